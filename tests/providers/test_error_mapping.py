"""Every exception class the SDKs export is translated at the provider edge, on purpose.

As httpx's ``test_httpcore_all_exceptions_mapped``: the SDKs' top-level exception classes
are walked, each is built and raised inside the provider's mapping, and what comes out
must be the llmbatch error written down for it here. A class an SDK adds (or drops) fails
``test_every_sdk_exception_has_a_decided_mapping`` until someone decides where it goes;
``tests/sdk-versions.txt`` pins the releases CI installs, so that happens when a pin is bumped.
"""

from __future__ import annotations

import inspect
import typing
from collections.abc import Callable, Iterator
from contextlib import AbstractContextManager
from types import ModuleType
from typing import Any

import anthropic
import httpx2
import openai
import pytest
from openai.types.chat import ChatCompletion

from llmbatch._exceptions import (
    AuthenticationError,
    BadRequest,
    CapacityUnavailable,
    ConnectionFailed,
    FatalError,
    LLMBatchError,
    ProviderError,
    QuotaExhausted,
    RateLimited,
    RequestTimeout,
    ServerError,
    UnknownProviderError,
)
from llmbatch.providers.anthropic import map_anthropic_errors
from llmbatch.providers.openai import map_openai_errors

KEY = "sk-test-5ecret-key-never-in-a-message"

OPENAI: dict[str, type[LLMBatchError]] = {
    "APIConnectionError": ConnectionFailed,
    "APIError": UnknownProviderError,
    "APIResponseValidationError": ServerError,
    "APIStatusError": UnknownProviderError,  # built with a status of no rule: 418
    "APITimeoutError": RequestTimeout,
    "AuthenticationError": AuthenticationError,
    "BadRequestError": BadRequest,
    "ConflictError": ServerError,
    "ContentFilterFinishReasonError": UnknownProviderError,  # .parse() helpers only
    "InternalServerError": ServerError,
    "LengthFinishReasonError": UnknownProviderError,  # .parse() helpers only
    "NotFoundError": FatalError,
    "OAuthError": AuthenticationError,
    "OpenAIError": UnknownProviderError,
    "PermissionDeniedError": AuthenticationError,
    "RateLimitError": RateLimited,
    "UnprocessableEntityError": BadRequest,
    "WebSocketConnectionClosedError": UnknownProviderError,  # the realtime API only
    "WebSocketQueueFullError": UnknownProviderError,
    "_AmbiguousModuleClientUsageError": UnknownProviderError,  # the module-level client only
}

ANTHROPIC: dict[str, type[LLMBatchError]] = {
    "APIConnectionError": ConnectionFailed,
    "APIError": UnknownProviderError,
    "APIResponseValidationError": ServerError,
    "APIStatusError": UnknownProviderError,  # built with a status of no rule: 418
    "APITimeoutError": RequestTimeout,
    "APIWebhookValidationError": UnknownProviderError,  # webhooks only
    "AnthropicError": UnknownProviderError,
    "AuthenticationError": AuthenticationError,
    "BadRequestError": BadRequest,
    "CMEKContextUnavailableError": ServerError,
    "CMEKKeyDisabledError": FatalError,  # a 400 of the account, not of the pack
    "CMEKKeyNetworkBlockedError": FatalError,
    "CMEKKeyUnreachableError": ServerError,
    "ClaudeCodeKeyCreatorNotMemberError": FatalError,
    "ClaudeCodeVersionTooOldError": FatalError,
    "ClientClosedRequestError": UnknownProviderError,  # 499
    "ConflictError": ServerError,
    "ContentTooLargeError": BadRequest,
    "ContractSpendLimitReachedError": QuotaExhausted,  # even with a retry-after
    "CredentialsError": AuthenticationError,
    "DeadlineExceededError": ServerError,  # an alias of GatewayTimeoutError
    "EnforcedSpendLimitReachedError": QuotaExhausted,  # even with a retry-after
    "GatewayTimeoutError": ServerError,
    "HTTPNotImplementedError": ServerError,
    "IdentityTokenFileError": AuthenticationError,
    "InternalServerError": ServerError,
    "LinkedOrganizationBillingUnavailableError": QuotaExhausted,
    "LinkedOrganizationSpendLimitReachedError": QuotaExhausted,
    "NotFoundError": FatalError,
    "OrganizationOnHoldError": FatalError,
    "OrganizationTypeNotSupportedError": FatalError,
    "OrganizationURLFetchDisabledError": FatalError,
    "OverloadedError": ServerError,
    "ParentOrganizationRequiredError": FatalError,
    "PaymentRequiredError": QuotaExhausted,
    "PermissionDeniedError": AuthenticationError,
    "PreconditionFailedError": UnknownProviderError,  # 412
    "RampLimitExceededError": RateLimited,
    "RateLimitError": RateLimited,
    "RequestBodyEncodingInvalidError": BadRequest,
    "RequestBodyEncodingUnsupportedError": BadRequest,
    "RequestBodyTooLargeAfterDecodingError": BadRequest,
    "RequestHeaderFieldsTooLargeError": UnknownProviderError,  # 431
    "RequestTimeoutError": ServerError,
    "RequestTooLargeError": BadRequest,  # an alias of ContentTooLargeError
    "RetryableError": UnknownProviderError,  # the SDK's "retry me", and so retried
    "SandboxEgressRestrictedError": AuthenticationError,
    "ServiceUnavailableError": ServerError,
    "StorageNotReadyError": ServerError,
    "UnprocessableEntityError": BadRequest,
    "WorkloadIdentityError": AuthenticationError,
    "WorkspaceHumanReviewDisabledError": FatalError,
}

UNCONSTRUCTIBLE: dict[str, str] = {}
"""SDK classes that cannot be built outside the SDK, by name, with the reason (none today)."""

STATUS_OF: dict[str, int] = {"APIStatusError": 418, "InternalServerError": 500}
"""Statuses for the status classes that declare none of their own."""

Mapping = Callable[[str | None], AbstractContextManager[None]]
SDKS: dict[str, tuple[ModuleType, type[Exception], dict[str, type[LLMBatchError]], Mapping]] = {
    "openai": (openai, openai.OpenAIError, OPENAI, map_openai_errors),
    "anthropic": (anthropic, anthropic.AnthropicError, ANTHROPIC, map_anthropic_errors),
}


def sdk_exceptions(module: ModuleType, base: type[Exception]) -> dict[str, type[Exception]]:
    """Every exception class in the SDK's package namespace, by the name it is bound to there
    (aliases too: ``DeadlineExceededError`` is ``GatewayTimeoutError``), private ones included."""
    return {
        name: value
        for name, value in sorted(vars(module).copy().items())
        if inspect.isclass(value) and issubclass(value, base)
    }


def cases() -> Iterator[Any]:
    for sdk, (module, base, _, _) in SDKS.items():
        for name, cls in sdk_exceptions(module, base).items():
            yield pytest.param(sdk, name, cls, id=f"{sdk}.{name}")


def status_of(cls: type[Exception]) -> int:
    status = STATUS_OF.get(cls.__name__, getattr(cls, "status_code", None))
    if status is None:  # a subclass of a status class without one: its parent's
        status = next(STATUS_OF[c.__name__] for c in cls.__mro__ if c.__name__ in STATUS_OF)
    assert isinstance(status, int), cls
    return status


def error_code_of(cls: type[Exception]) -> str | None:
    """The ``error_code`` a detailed Anthropic class is made for (``Literal["..."]``)."""
    for klass in cls.__mro__:
        values = typing.get_args(vars(klass).get("__annotations__", {}).get("error_code"))
        if len(values) == 1 and isinstance(values[0], str):
            return values[0]
    return None


def build(cls: type[Exception]) -> Exception:
    """An instance as the SDK would raise it: a request, a response of the class's status
    (429s with a retry-after, so that only a spend limit is a quota), a JSON error body."""
    request = httpx2.Request("POST", "https://api.example.test/v1/messages")
    message = f"something failed for key {KEY}"
    status = status_of(cls) if issubclass(cls, (openai.APIStatusError, anthropic.APIStatusError)) else 500
    code = error_code_of(cls) if issubclass(cls, anthropic.APIStatusError) else None
    error: dict[str, Any] = {"type": "api_error", "message": message, "code": "some_code"}
    if code is not None:
        error["details"] = {"error_code": code}
    body = {"type": "error", "error": error}
    headers = {"retry-after": "1"} if status == 429 else {}
    response = httpx2.Response(status, request=request, headers=headers, json=body)
    arguments = {
        "message": message,
        "request": request,
        "response": response,
        "body": body,
        "completion": ChatCompletion.model_construct(usage=None),
        "unsent_messages": [],
    }
    signature = inspect.signature(cls.__init__)
    given: dict[str, Any] = {}
    for name, parameter in list(signature.parameters.items())[1:]:
        if parameter.kind in (parameter.VAR_POSITIONAL, parameter.VAR_KEYWORD):
            continue
        if name in arguments:
            given[name] = arguments[name]
        else:
            assert parameter.default is not parameter.empty, (
                f"{cls.__name__}({name}=...): say how to build it in build(), or list it in UNCONSTRUCTIBLE"
            )
    if not given and any(p.kind is p.VAR_POSITIONAL for p in signature.parameters.values()):
        return cls(message)  # Exception's own (*args)
    return cls(**given)


@pytest.mark.parametrize("sdk", sorted(SDKS))
def test_every_sdk_exception_has_a_decided_mapping(sdk: str) -> None:
    module, base, expected, _ = SDKS[sdk]
    exported = set(sdk_exceptions(module, base))
    undecided = sorted(exported - set(expected) - set(UNCONSTRUCTIBLE))
    gone = sorted(set(expected) - exported)
    assert not undecided, f"{sdk} {module.__version__} exports {undecided}: decide how they map"
    assert not gone, f"{sdk} {module.__version__} no longer exports {gone}: drop them here"


@pytest.mark.parametrize(("sdk", "name", "cls"), list(cases()))
def test_every_sdk_exception_is_mapped_into_the_tree(sdk: str, name: str, cls: type[Exception]) -> None:
    _, _, expected, mapping = SDKS[sdk]
    if name in UNCONSTRUCTIBLE:
        pytest.skip(UNCONSTRUCTIBLE[name])
    assert name in expected, f"{sdk}.{name}: decide how it maps"
    raised = build(cls)
    assert type(raised) is cls
    with pytest.raises(LLMBatchError) as caught, mapping(KEY):
        raise raised
    mapped = caught.value
    assert type(mapped) is expected[name], f"{sdk}.{name} became {type(mapped).__name__}"
    # Raised on purpose, never a bare ProviderError that the policy retries by falling through.
    assert type(mapped) is not ProviderError
    assert mapped.__cause__ is raised
    assert KEY not in str(mapped)


def test_an_unknown_status_is_retryable_and_keeps_its_status() -> None:
    request = httpx2.Request("POST", "https://api.example.test/v1/chat/completions")
    response = httpx2.Response(418, request=request, json={"error": {"message": "teapot"}})
    with pytest.raises(UnknownProviderError) as caught, map_openai_errors(KEY):
        raise openai.APIStatusError("teapot", response=response, body={"error": {"message": "teapot"}})
    assert caught.value.status == 418 and caught.value.kind == "provider_error"


def _openai_status(status: int, message: str, code: str | None = None) -> openai.APIStatusError:
    request = httpx2.Request("POST", "https://api.example.test/v1/chat/completions")
    body = {"error": {"message": message, "type": "server_error", "code": code}}
    response = httpx2.Response(status, request=request, json=body)
    cls = {400: openai.BadRequestError, 429: openai.RateLimitError}.get(status, openai.APIStatusError)
    return cls(message, response=response, body=body)


@pytest.mark.parametrize(
    ("status", "message", "code"),
    [
        (429, "Resource Unavailable: flex processing has no capacity right now", None),  # OpenAI flex
        (429, "resource unavailable", "resource_unavailable"),
        (498, "Flex capacity exceeded", "capacity_exceeded"),  # Groq's flex tier
    ],
)
def test_flex_without_capacity_is_its_own_error_not_a_rate_limit(
    status: int, message: str, code: str | None
) -> None:
    with pytest.raises(CapacityUnavailable) as caught, map_openai_errors(KEY):
        raise _openai_status(status, message, code)
    assert caught.value.kind == "unavailable" and caught.value.status == status
    assert not isinstance(caught.value, RateLimited)


def test_a_plain_429_is_still_a_rate_limit() -> None:
    with pytest.raises(RateLimited), map_openai_errors(KEY):
        raise _openai_status(429, "Rate limit reached for requests", "rate_limit_exceeded")


def test_a_model_without_the_flex_tier_stops_the_job_instead_of_failing_every_record() -> None:
    message = "Invalid value for 'service_tier': flex is not available for this model"
    with pytest.raises(FatalError) as caught, map_openai_errors(KEY):
        raise _openai_status(400, message, "invalid_value")
    assert "--mode batch" in str(caught.value) and type(caught.value) is FatalError


def test_a_cache_retention_the_model_refuses_stops_the_job() -> None:
    # gpt-5.5 on takes only 24h; every request of the job would be refused alike.
    message = "This model is compatible only with 24h extended prompt caching (prompt_cache_retention)"
    with pytest.raises(FatalError) as caught, map_openai_errors(KEY):
        raise _openai_status(400, message, "invalid_value")
    assert "--cache-retention" in str(caught.value)
