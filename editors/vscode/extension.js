'use strict';
// The intento extension for VS Code. The language itself (the `.intent` extension, the grammar,
// comments, brackets and indentation) is declared in package.json; this file starts the language
// server, `intento lsp`, and talks to it over its standard input and output.
//
// Plain CommonJS, nothing to build. `vscode` is provided by VS Code; `vscode-languageclient` comes
// from `npm install` in this folder (see README.md).

const vscode = require('vscode');
const { LanguageClient } = require('vscode-languageclient/node');

/** @type {LanguageClient | undefined} */
let client;

/** The server command from the settings: `intento.server.path` and `intento.server.args`. */
function serverCommand() {
  const config = vscode.workspace.getConfiguration('intento');
  const command = config.get('server.path') || 'intento';
  const args = config.get('server.args');
  return { command, args: Array.isArray(args) ? args.map(String) : ['lsp'] };
}

async function startClient() {
  const { command, args } = serverCommand();
  // An executable without a `transport` is spoken to over stdio, and no `--stdio` is added.
  const serverOptions = { command, args };
  const clientOptions = {
    documentSelector: [
      { scheme: 'file', language: 'intento' },
      { scheme: 'untitled', language: 'intento' },
    ],
    synchronize: {
      // The server checks the whole project: tell it when a file changes on disk, too.
      fileEvents: vscode.workspace.createFileSystemWatcher('**/*.intent'),
    },
  };
  // The id `intento` makes the client read the `intento.trace.server` setting.
  const started = new LanguageClient('intento', 'Intento Language Server', serverOptions, clientOptions);
  client = started;
  try {
    await started.start();
  } catch (err) {
    client = undefined;
    const shown = [command, ...args].join(' ');
    const message = err && err.message ? err.message : String(err);
    void vscode.window.showErrorMessage(
      `Intento: could not start the language server \`${shown}\` (${message}). ` +
        'Install it (pip install "intento[lsp]") or set `intento.server.path` and `intento.server.args`.'
    );
  }
}

async function stopClient() {
  const running = client;
  client = undefined;
  if (running) {
    try {
      await running.stop();
    } catch (err) {
      // Already stopped, or never started: nothing left to stop.
    }
  }
}

async function restartClient() {
  await stopClient();
  await startClient();
}

/** Called by VS Code when an `.intent` file is opened (activationEvents in package.json). */
async function activate(context) {
  context.subscriptions.push(
    vscode.commands.registerCommand('intento.restartServer', () => restartClient()),
    vscode.workspace.onDidChangeConfiguration((event) => {
      if (event.affectsConfiguration('intento.server')) {
        void restartClient();
      }
    })
  );
  await startClient();
}

/** Called by VS Code on shutdown or when the extension is disabled: stop the server. */
function deactivate() {
  return stopClient();
}

module.exports = { activate, deactivate };
