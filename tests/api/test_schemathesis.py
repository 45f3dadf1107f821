"""Property-based requests generated from the OpenAPI document, sent to the live server with an
admin key: no 5xx on any operation, and every response conforms to the document (status codes,
content types, headers, schemas). `positive_data_acceptance` is left out: a schema-valid but
forged cursor or an out-of-range time is rightly a 400. Driven with hypothesis directly (schemathesis' pytest plugin
does not load under this pytest), with a bounded number of examples per operation."""

from __future__ import annotations

import schemathesis
from hypothesis import HealthCheck, given, settings
from schemathesis.checks import positive_data_acceptance

from .conftest import auth

EXAMPLES = 25


def test_no_server_errors(live):
    server, _engine, keys, _runs = live
    schema = schemathesis.openapi.from_url(f"{server.url}/v1/openapi.json")
    failures: dict[str, str] = {}
    operations = [r.ok() for r in schema.get_all_operations()]
    assert len(operations) >= 10

    for op in operations:
        @given(case=op.as_strategy())
        @settings(max_examples=EXAMPLES, deadline=None, suppress_health_check=list(HealthCheck), database=None)
        def call(case: schemathesis.Case) -> None:
            case.call_and_validate(base_url=server.url, headers=auth(keys["admin"]),
                                  excluded_checks=[positive_data_acceptance])

        try:
            call()
        except Exception as e:  # noqa: BLE001 - collect every operation's failure, report them together
            failures[op.label] = f"{e.__class__.__name__}: {str(e)[:1500]}"
    assert not failures, "\n\n".join(f"{k}:\n{v}" for k, v in failures.items())
