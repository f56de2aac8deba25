"""Handlers for the settlement example in the console's browser tests
(`--handlers tests.console.settlement_handlers:registry`): every step the project commands
succeeds at once; the bank's file (an `external` action) arrives only when someone observes
`settlement.received`, so runs wait for it until the console's operator acts."""

from intento.execute import Registry

registry = Registry()


@registry.handler("fetch_file_manually")
@registry.handler("verify_file")
@registry.handler("transform_file")
@registry.handler("post_to_ledger")
@registry.handler("reverse_postings")
def done(ctx):
    return {"latency_ms": 5}
