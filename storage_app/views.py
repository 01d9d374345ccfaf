"""Public API: count the keywords of a text, read keyword counts."""

from __future__ import annotations

from django.http import HttpRequest, HttpResponse
from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import OpenApiExample, OpenApiParameter, OpenApiResponse, extend_schema
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.views import APIView

from storage_app.core.batch import MEDIA_TYPE as BATCH_MEDIA_TYPE
from storage_app.core.batch import encode_results, parse_batch
from storage_app.core.config import DEFAULT_MAX_KEYWORD_LENGTH, DEFAULT_MAX_TOP
from storage_app.core.idempotency import MAX_KEY_BYTES, check_key
from storage_app.http import read_body
from storage_app.node import current_node
from storage_app.parsers import PlainTextParser
from storage_app.plain_json import PlainJSONReads, query_values
from storage_app.public_auth import HasPublicToken
from storage_app.serializers import (
    ErrorSerializer,
    IndexResultSerializer,
    OccurrenceSerializer,
    TopKeywordSerializer,
)
from storage_app.top import DEFAULT_TOP, parse_top_query, top_entries

# COUNTER_PUBLIC_READ_TOKEN / COUNTER_PUBLIC_TOKEN (storage_app/public_auth.py): optional, off by default.
READ_TOKEN_REQUIRED = OpenApiResponse(
    ErrorSerializer,
    description=(
        "COUNTER_PUBLIC_READ_TOKEN is set and the request does not carry 'Authorization: Bearer <token>' "
        "(code `public_token_required`)."
    ),
)
WRITE_TOKEN_REQUIRED = OpenApiResponse(
    ErrorSerializer,
    description=(
        "COUNTER_PUBLIC_TOKEN is set and the request does not carry 'Authorization: Bearer <token>' "
        "(code `public_token_required`); nothing was counted."
    ),
)

COUNTED = (
    "Counted (or replayed): one object for a text (application/json); for a batch "
    "(application/x-ndjson), one object per text, one per line."
)
LOOKUP_REFUSED = OpenApiResponse(
    ErrorSerializer,
    description=(
        "More keywords than COUNTER_MAX_LOOKUP_KEYWORDS (code `too_many_keywords`), or one longer than "
        "COUNTER_MAX_KEYWORD_LENGTH characters (code `keyword_too_long`)."
    ),
)
RATE_LIMITED = OpenApiResponse(
    ErrorSerializer,
    description=(
        "COUNTER_RATE_LIMIT is set and this client address is past it (code `rate_limited`); the Retry-After "
        "header says when to try again. Nothing was counted."
    ),
)


def _occurrences(pairs: list[tuple[str, int]]) -> list[dict[str, object]]:
    return [{"key": keyword, "count": count} for keyword, count in pairs]


class KeywordsView(PlainJSONReads, APIView):
    """Count the keywords of a text (POST) or read the counts of keywords (GET)."""

    permission_classes = [HasPublicToken]
    parser_classes = [PlainTextParser]

    @extend_schema(
        operation_id="keywords_read",
        summary="Counts of keywords",
        description=(
            "One object per `keywords` parameter, in the order given, duplicates kept. `key` echoes the "
            "keyword as sent; the lookup normalises it the way the node's tokenizer does (lower-cased). "
            "A keyword never seen counts 0; no parameter gives `[]`."
        ),
        parameters=[
            OpenApiParameter(
                "keywords", OpenApiTypes.STR, many=True, explode=True, description="A keyword; repeat for more."
            )
        ],
        responses={
            200: OccurrenceSerializer(many=True),
            400: LOOKUP_REFUSED,
            401: READ_TOKEN_REQUIRED,
            429: RATE_LIMITED,
        },
        examples=[OpenApiExample("Two keywords", value=[{"key": "fox", "count": 3}, {"key": "cat", "count": 0}])],
    )
    def get(self, request: Request) -> Response:
        return Response(self.read(request))

    def read(self, request: HttpRequest | Request) -> list[dict[str, object]]:
        return _occurrences(current_node().lookup(query_values(request, "keywords")))

    @extend_schema(
        operation_id="keywords_index",
        summary="Count the keywords of a text",
        description=(
            "The body is raw UTF-8 text, whatever the Content-Type. Every token increments its keyword by one. "
            "The body must not exceed COUNTER_MAX_BODY_BYTES (16 MiB by default). With an Idempotency-Key, "
            "a text sent again under the same key (to this node, or to another once the first node's "
            "increment has reached it) is counted once: the repeat gets the first reply and the header "
            "`Idempotent-Replayed: true`. With `Content-Type: application/x-ndjson` the body holds many texts, "
            'one per line: a JSON string, or `{"text": "...", "key": "..."}` with that text\'s own idempotency '
            "key (a line without one takes the header's key plus `/<n>`, n its position from 1). They are "
            'counted all or none, and the answer has one line per text: `{"tokens": t, "keywords": k, '
            '"replayed": false}` (`true`: a key seen before, counted once already). At most '
            "COUNTER_MAX_BATCH_TEXTS texts (10,000 by default)."
        ),
        parameters=[
            OpenApiParameter(
                "Idempotency-Key",
                OpenApiTypes.STR,
                location=OpenApiParameter.HEADER,
                required=False,
                pattern=f"^[!-~]{{1,{MAX_KEY_BYTES}}}$",
                description=(
                    f"1 to {MAX_KEY_BYTES} visible ASCII characters (no spaces; a UUID works), unique per text and "
                    "the same on every retry of it; remembered "
                    "for COUNTER_IDEMPOTENCY_TTL (24 hours by default)."
                ),
            )
        ],
        request={"text/plain": OpenApiTypes.STR, BATCH_MEDIA_TYPE: OpenApiTypes.STR},
        responses={
            (200, "application/json"): OpenApiResponse(IndexResultSerializer, description=COUNTED),
            (200, BATCH_MEDIA_TYPE): OpenApiResponse(OpenApiTypes.STR, description=COUNTED),
            400: OpenApiResponse(
                ErrorSerializer,
                description=(
                    "The body is not valid UTF-8, or the Idempotency-Key is empty or too long, or (a batch) a "
                    "line is not a JSON text or there are too many (code `invalid_batch`); nothing was counted."
                ),
            ),
            401: WRITE_TOKEN_REQUIRED,
            429: RATE_LIMITED,
            409: OpenApiResponse(
                ErrorSerializer,
                description="The Idempotency-Key was first used with another text (code `idempotency_key_reused`); "
                "nothing was counted.",
            ),
            413: OpenApiResponse(ErrorSerializer, description="The body is too large; nothing was counted."),
            503: OpenApiResponse(
                ErrorSerializer,
                description=(
                    "The node is still loading its state (GET /readyz is 503 until then) or shutting down; "
                    "nothing was counted. A ready node never refuses a valid text otherwise."
                ),
            ),
            507: OpenApiResponse(
                ErrorSerializer, description="The write-ahead log could not be written; nothing was counted."
            ),
        },
    )
    def post(self, request: Request) -> Response | HttpResponse:
        node = current_node()
        header = request.META.get("HTTP_IDEMPOTENCY_KEY")
        key = check_key(header) if header is not None else None
        body = read_body(request, node.config.max_body_bytes, "COUNTER_MAX_BODY_BYTES")
        if request.META.get("CONTENT_TYPE", "").partition(";")[0].strip().lower() == BATCH_MEDIA_TYPE:
            batch = parse_batch(body, key, node.config.max_batch_texts)
            results = node.index_batch([item.text for item in batch], [item.key for item in batch])
            lines = encode_results([(result.tokens, result.keywords, result.replayed) for result in results])
            return HttpResponse(lines, content_type=BATCH_MEDIA_TYPE)
        result = node.index(body, key)
        response = Response({"tokens": result.tokens, "keywords": result.keywords})
        if result.replayed:
            response["Idempotent-Replayed"] = "true"
        return response


class KeywordDetailView(PlainJSONReads, APIView):
    """The count of one keyword."""

    permission_classes = [HasPublicToken]

    @extend_schema(
        operation_id="keyword_read",
        summary="Count of one keyword",
        responses={
            200: OccurrenceSerializer,
            400: LOOKUP_REFUSED,
            401: READ_TOKEN_REQUIRED,
            429: RATE_LIMITED,
            404: OpenApiResponse(
                ErrorSerializer,
                description="No route: the keyword is empty or holds a line break (no tokenizer makes such a keyword).",
            ),
        },
    )
    def get(self, request: Request, keyword: str) -> Response:
        return Response(self.read(request, keyword))

    def read(self, request: HttpRequest | Request, keyword: str) -> dict[str, object]:
        return _occurrences(current_node().lookup([keyword]))[0]


class TopView(PlainJSONReads, APIView):
    """The keywords counted most."""

    permission_classes = [HasPublicToken]

    @extend_schema(
        operation_id="top_read",
        summary="The keywords counted most",
        description=(
            "The `n` keywords with the highest counts summed over the cluster (as this node knows it), highest "
            "first; equal counts by keyword (code point order). With `prefix`, only keywords that start with it "
            "(normalised like a lookup's keyword, so `Ab` finds `ab...`). A keyword merged from a counter-app "
            "node has no known text until a node that knows it syncs: it is listed with `key` null and its "
            "`hash`, after the keywords of equal count, and never matches a prefix."
        ),
        parameters=[
            OpenApiParameter(
                "n",
                {"type": "integer", "minimum": 1, "maximum": DEFAULT_MAX_TOP},
                description=(
                    f"How many keywords: 1 to COUNTER_MAX_TOP ({DEFAULT_MAX_TOP} by default, the maximum shown "
                    f"here); {DEFAULT_TOP} if absent."
                ),
            ),
            OpenApiParameter(
                "prefix",
                OpenApiTypes.STR,
                description=(
                    "Only keywords that start with this; at most COUNTER_MAX_KEYWORD_LENGTH characters "
                    f"({DEFAULT_MAX_KEYWORD_LENGTH} by default)."
                ),
            ),
        ],
        responses={
            200: TopKeywordSerializer(many=True),
            400: OpenApiResponse(
                ErrorSerializer,
                description=(
                    "n is not a whole number from 1 to COUNTER_MAX_TOP, a parameter is given twice, or the "
                    "prefix is longer than COUNTER_MAX_KEYWORD_LENGTH (code `invalid_top_query`)."
                ),
            ),
            401: READ_TOKEN_REQUIRED,
            429: RATE_LIMITED,
        },
        examples=[
            OpenApiExample(
                "Three keywords, one merged from counter-app",
                value=[
                    {"key": "the", "count": 1234},
                    {"key": "fox", "count": 56},
                    {"key": None, "hash": "0x9f1c02b8e36a4d71", "count": 56},
                ],
            )
        ],
    )
    def get(self, request: Request) -> Response:
        return Response(self.read(request))

    def read(self, request: HttpRequest | Request) -> list[dict[str, object]]:
        n, prefix = parse_top_query({name: query_values(request, name) for name in ("n", "prefix")})
        return top_entries(current_node().top(n, prefix))


class HealthView(APIView):
    """200 whenever the node's process serves requests."""

    renderer_classes = APIView.renderer_classes[:1]

    @extend_schema(exclude=True)
    def get(self, request: Request) -> Response:
        node = current_node()
        return Response({"status": "ok", "node_id": node.config.node_id, "keys": len(node.store)})


class ReadyView(APIView):
    """200 once the node has loaded its snapshot and log (from then on it takes every valid write); 503 before."""

    renderer_classes = APIView.renderer_classes[:1]

    @extend_schema(exclude=True)
    def get(self, request: Request) -> Response:
        if current_node().ready:
            return Response({"status": "ready"})
        return Response({"status": "recovering", "detail": "loading the snapshot and replaying the log"}, status=503)
