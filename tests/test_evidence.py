"""The evidence reader: what an event's text says about the error (status, type, code…)."""

from __future__ import annotations

import pytest

from oai400d.classify.evidence import extract


@pytest.mark.parametrize(
    ("text", "code"),
    [
        ("{'error': {'code': 'model_not_found'}}", "model_not_found"),
        ("error_code=insufficient_quota error_message='You exceeded'", "insufficient_quota"),
        ("Error: 404 The model `gpt-5o` does not exist\n  lc_error_code: 'MODEL_NOT_FOUND',", None),
        ("System.ClientModel.ClientResultException: HTTP 404 (: DeploymentNotFound)", "DeploymentNotFound"),
        ("invalid_request_error: prompt too long (param: messages) (code: context_length_exceeded)", "context_length_exceeded"),
        ("Error: [429:insufficient_quota] You exceeded your current quota", "insufficient_quota"),
    ],
)
def test_the_code_the_api_sent_is_read_in_every_shape(text: str, code: str | None) -> None:
    """An error code is read from JSON, reprs, logfmt and the SDKs' own shapes; LangChain's
    `lc_error_code` (its troubleshooting page) is not one."""
    assert extract(text).error_code == code


@pytest.mark.parametrize(
    ("text", "status"),
    [
        ("Error: 429 You exceeded your current quota", 429),
        ("error, status code: 404, message: The model `x` does not exist", 404),
        ("HTTP Request: POST https://api.openai.com/v1/chat/completions \"HTTP/1.1 200 OK\"", 200),
        ("openai.RateLimitError: rate limited", None),
    ],
)
def test_the_status_is_read_where_the_text_shows_it(text: str, status: int | None) -> None:
    """A status shown in any known form is read; a class name alone is not a shown status."""
    assert extract(text).status == status
