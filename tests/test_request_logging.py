"""Django's request log: a 503 (loading or shutting down) is expected, a 500 is an error."""

from __future__ import annotations

import logging

import pytest
from django.http import HttpResponse
from django.test import RequestFactory
from django.utils.log import log_response


def test_a_503_leaves_no_error_line_and_a_500_does(caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.ERROR, logger="django.request")
    request = RequestFactory().get("/readyz")
    log_response("Service Unavailable: %s", request.path, response=HttpResponse(status=503), request=request)
    log_response("Internal Server Error: %s", request.path, response=HttpResponse(status=500), request=request)
    logged = [record for record in caplog.records if record.name == "django.request"]
    assert [record.getMessage() for record in logged] == ["Internal Server Error: /readyz"]
