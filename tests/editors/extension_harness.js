'use strict';
// Runs editors/vscode/extension.js outside VS Code, with stand-ins for the `vscode` module and for
// `vscode-languageclient/node`, and prints what it did as JSON (tests/editors/test_vscode_extension.py).
//
//   node extension_harness.js EXTENSION_JS '{"intento.server.path": "..."}' [fail-start]
//
// The scenario: activate; a settings change that touches `intento.server`; one that does not; the
// command `intento.restartServer`; deactivate.

const Module = require('module');
const path = require('path');

const settings = JSON.parse(process.argv[3] || '{}');
const failStart = process.argv[4] === 'fail-start';

const clients = [];
const commands = {};
const configListeners = [];
const errors = [];
const events = [];

class FakeLanguageClient {
  constructor(id, name, serverOptions, clientOptions) {
    this.id = id;
    this.name = name;
    this.serverOptions = serverOptions;
    this.clientOptions = clientOptions;
    this.index = clients.length;
    clients.push(this);
    events.push(`new ${this.index}`);
  }

  start() {
    events.push(`start ${this.index}`);
    return failStart ? Promise.reject(new Error('spawn intento ENOENT')) : Promise.resolve();
  }

  stop() {
    events.push(`stop ${this.index}`);
    return Promise.resolve();
  }
}

const fakeVscode = {
  workspace: {
    getConfiguration(section) {
      return {
        get(key, fallback) {
          const value = settings[`${section}.${key}`];
          return value === undefined ? fallback : value;
        },
      };
    },
    createFileSystemWatcher(glob) {
      return { glob, dispose() {} };
    },
    onDidChangeConfiguration(listener) {
      configListeners.push(listener);
      return { dispose() {} };
    },
  },
  commands: {
    registerCommand(id, callback) {
      commands[id] = callback;
      return { dispose() {} };
    },
  },
  window: {
    showErrorMessage(message) {
      errors.push(message);
      return Promise.resolve(undefined);
    },
  },
};

const load = Module._load;
Module._load = function (request, parent, isMain) {
  if (request === 'vscode') return fakeVscode;
  if (request === 'vscode-languageclient/node') return { LanguageClient: FakeLanguageClient };
  return load.call(this, request, parent, isMain);
};

function changeSettings(section) {
  const event = { affectsConfiguration: (s) => s === section || section.startsWith(`${s}.`) };
  return Promise.all(configListeners.map((listener) => listener(event)));
}

const settle = () => new Promise((resolve) => setTimeout(resolve, 10));

(async () => {
  const extension = require(path.resolve(process.argv[2]));
  const context = { subscriptions: [] };
  await extension.activate(context);
  events.push('activated');
  await changeSettings('intento.server.path');
  await settle();
  events.push('changed intento.server.path');
  await changeSettings('editor.fontSize');
  await settle();
  events.push('changed editor.fontSize');
  if (commands['intento.restartServer']) await commands['intento.restartServer']();
  events.push('restart command');
  await extension.deactivate();
  events.push('deactivated');
  process.stdout.write(
    JSON.stringify({
      exports: Object.keys(extension).sort(),
      subscriptions: context.subscriptions.length,
      commands: Object.keys(commands).sort(),
      errors,
      events,
      clients: clients.map((c) => ({
        id: c.id,
        name: c.name,
        serverOptions: c.serverOptions,
        documentSelector: c.clientOptions.documentSelector,
        watched: c.clientOptions.synchronize && c.clientOptions.synchronize.fileEvents
          ? c.clientOptions.synchronize.fileEvents.glob
          : null,
      })),
    })
  );
})().catch((err) => {
  process.stderr.write(String(err && err.stack ? err.stack : err));
  process.exit(1);
});
