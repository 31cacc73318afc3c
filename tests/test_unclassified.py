"""OpenAI errors that no rule explains are shown as `unclassified`, never dropped and never given
a guessed cause: an unknown code in every client shape, with each status a fallback would take."""

from __future__ import annotations

import pytest

from oai400d.classify import Classifier, load_rules
from oai400d.model import Event

CLASSIFIER = Classifier()
CODE = "quantum_flux_exceeded"  # a code no rule knows
MESSAGE = "The flux capacitor is over its limit for this project."

SHAPES = {
    "openai-python v1": (
        "openai.BadRequestError: Error code: 400 - {'error': {'message': '" + MESSAGE + "', "
        "'type': 'invalid_request_error', 'param': None, 'code': '" + CODE + "'}}"
    ),
    "openai-python v1, 429": (
        "openai.RateLimitError: Error code: 429 - {'error': {'message': '" + MESSAGE + "', "
        "'type': 'requests', 'param': None, 'code': '" + CODE + "'}}"
    ),
    "openai-python v1, 503": (
        "openai.InternalServerError: Error code: 503 - {'error': {'message': '" + MESSAGE + "', "
        "'type': 'server_error', 'param': None, 'code': '" + CODE + "'}}"
    ),
    "openai-python 0.x logfmt": (
        "message='OpenAI API error received' stream_error=False\n"
        f"error_code={CODE} error_message='{MESSAGE}' error_param=None "
        "error_type=invalid_request_error message='OpenAI API error received' stream_error=False"
    ),
    "openai-node": (
        f"BadRequestError: 400 {MESSAGE}\n"
        "    at APIError.generate (/app/node_modules/openai/error.js:45:20)\n"
        "    at OpenAI.makeStatusError (/app/node_modules/openai/core.js:293:33) {\n"
        "  status: 400,\n"
        "  error: {\n"
        f"    message: '{MESSAGE}',\n"
        "    type: 'invalid_request_error',\n"
        "    param: null,\n"
        f"    code: '{CODE}'\n"
        "  },\n"
        f"  code: '{CODE}',\n"
        "  param: null,\n"
        "  type: 'invalid_request_error'\n"
        "}"
    ),
    "JSON-lines log": (
        '{"level":"error","time":"2026-01-05T10:00:00Z","msg":"openai call failed","err":'
        '"Error code: 400 - {\\"error\\": {\\"message\\": \\"' + MESSAGE + '\\", \\"type\\": '
        '\\"invalid_request_error\\", \\"param\\": null, \\"code\\": \\"' + CODE + '\\"}}"}'
    ),
    "pretty JSON body from api.openai.com": (
        "POST https://api.openai.com/v1/responses failed:\n"
        "{\n"
        '  "error": {\n'
        f'    "message": "{MESSAGE}",\n'
        '    "type": "invalid_request_error",\n'
        '    "param": null,\n'
        f'    "code": "{CODE}"\n'
        "  }\n"
        "}"
    ),
    "Realtime error event": (
        "openai realtime: "
        '{"type":"error","event_id":"event_9","error":{"type":"invalid_request_error",'
        f'"code":"{CODE}","message":"{MESSAGE}","param":null,"event_id":"event_8"}}}}'
    ),
    "LiteLLM": (
        "litellm.BadRequestError: OpenAIException - Error code: 400 - {'error': {'message': '"
        + MESSAGE + "', 'type': 'invalid_request_error', 'param': None, 'code': '" + CODE + "'}}"
    ),
    ".NET ClientResultException": (
        f"System.ClientModel.ClientResultException: HTTP 400 (invalid_request_error: {CODE})\n\n"
        f"{MESSAGE}"
    ),
    "Vercel AI SDK": (
        "AI_APICallError: " + MESSAGE + "\n"
        "    at /app/node_modules/@ai-sdk/provider-utils/dist/index.mjs:431:14 {\n"
        "  url: 'https://api.openai.com/v1/chat/completions',\n"
        "  statusCode: 400,\n"
        "  responseBody: '{\\n  \"error\": {\\n    \"message\": \""
        + MESSAGE + "\",\\n    \"type\": \"invalid_request_error\",\\n    \"param\": null,\\n"
        "    \"code\": \"" + CODE + "\"\\n  }\\n}',\n"
        "  isRetryable: false\n"
        "}"
    ),
}


@pytest.mark.parametrize("shape", SHAPES)
def test_an_unknown_code_is_unclassified_in_every_client_shape(shape: str) -> None:
    """The error is OpenAI's, its code no rule knows: `unclassified`, with the code and message
    shown, and never the cause of a status fallback (request.invalid_parameter for a 400)."""
    finding = CLASSIFIER.classify(Event("app.log", 1, 1, SHAPES[shape]))
    assert finding is not None, shape
    assert (finding.category, finding.rule) == ("unclassified", "openai.unclassified")
    assert finding.error_code == CODE
    assert "flux capacitor" in finding.message
    assert finding.title == "OpenAI error the rules do not know"
    assert any("[[rules]]" in fix for fix in finding.fixes)


@pytest.mark.parametrize(
    "text",
    [
        # A code that only restates the status: the status fallback still explains it.
        "ERROR gateway: azure-openai error {\"error\": {\"code\": \"RATE_LIMITED\", \"message\": "
        "\"Please retry after 20 seconds.\"}, \"status\": 429}",
        # A bare status from an OpenAI client: the fallback's likely cause, as the taxonomy says.
        "openai.APIStatusError: Error code: 429",
    ],
)
def test_a_status_with_nothing_unknown_keeps_its_fallback(text: str) -> None:
    """Unclassified is for an unknown cause, not for a bare status: those keep the fallback."""
    finding = CLASSIFIER.classify(Event("app.log", 1, 1, text))
    assert finding is not None
    assert finding.category == "rate_limit"


@pytest.mark.parametrize(
    "text",
    [
        "INFO openai._base_client: Retrying request to /chat/completions in 0.4 seconds",
        "DEBUG openai client created for project proj_abc with model gpt-4o",
        '{"type": "error", "error": {"type": "overloaded_error", "message": "Overloaded"}}',
        "    raise OpenAIError(",
        '{"error":"Invalid API key format. OpenAI keys start with sk-","type":"api_error"}',
    ],
)
def test_no_error_or_not_openais_is_still_nothing(text: str) -> None:
    """Lines that show no error, and another provider's envelope, stay negatives."""
    assert CLASSIFIER.classify(Event("app.log", 1, 1, text)) is None


def test_openais_error_event_envelope_is_openais() -> None:
    """OpenAI's stream/Realtime `{"type":"error","error":{…}}` with code and param inside is
    OpenAI's (a known code gets its rule); Anthropic's {type, message}-only inner error is not."""
    known = (
        'realtime event {"type":"error","event_id":"event_1","error":{"type":'
        '"invalid_request_error","code":"invalid_api_key","message":"Incorrect API key '
        'provided: sk-proj-****abcd.","param":null}} from wss://api.openai.com/v1/realtime'
    )
    finding = CLASSIFIER.classify(Event("app.log", 1, 1, known))
    assert finding is not None and finding.category == "auth.invalid_api_key"


def test_unclassified_is_counted_like_any_category() -> None:
    """The rule table names the category, so metrics, alerts and `status` treat it as a cause."""
    table = load_rules()
    assert table.unclassified.category == "unclassified"
    assert table.unclassified.severity == "warning"
