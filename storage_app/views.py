"""Public API: count the keywords of a text, read keyword counts."""

from __future__ import annotations

from django.conf import settings
from django.http import HttpRequest
from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import OpenApiExample, OpenApiParameter, OpenApiResponse, extend_schema
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.views import APIView

from counter_site.exceptions import InvalidText, ServiceUnavailable
from counter_site.http import read_body
from counter_site.plain_json import PlainJSONReads, query_values
from storage_app import services
from storage_app.parsers import PlainTextParser
from storage_app.serializers import ErrorSerializer, IndexResultSerializer, OccurrenceSerializer


def _occurrences(pairs: list[tuple[str, int]]) -> list[dict[str, object]]:
    return [{"key": keyword, "count": count} for keyword, count in pairs]


class KeywordsView(PlainJSONReads, APIView):
    """Count the keywords of a text (POST) or read the counts of keywords (GET)."""

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
        responses={200: OccurrenceSerializer(many=True)},
        examples=[OpenApiExample("Two keywords", value=[{"key": "fox", "count": 3}, {"key": "cat", "count": 0}])],
    )
    def get(self, request: Request) -> Response:
        return Response(self.read(request))

    def read(self, request: HttpRequest | Request) -> list[dict[str, object]]:
        services.require_ready()
        return _occurrences(services.lookup(query_values(request, "keywords")))

    @extend_schema(
        operation_id="keywords_index",
        summary="Count the keywords of a text",
        description=(
            "The body is raw UTF-8 text, whatever the Content-Type. Every token increments its keyword by one. "
            "The body must not exceed COUNTER_MAX_BODY_BYTES (16 MiB by default)."
        ),
        request={"text/plain": OpenApiTypes.STR},
        responses={
            200: IndexResultSerializer,
            400: OpenApiResponse(ErrorSerializer, description="The body is not valid UTF-8; nothing was counted."),
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
    def post(self, request: Request) -> Response:
        body = read_body(request, settings.COUNTER_MAX_BODY_BYTES, "COUNTER_MAX_BODY_BYTES")
        try:
            result = services.index_text(body)
        except UnicodeDecodeError as error:
            raise InvalidText(
                f"Request body is not valid UTF-8 (byte {error.start}: {error.reason}); nothing was counted."
            ) from None
        except services.WritesClosed:
            raise ServiceUnavailable from None
        return Response({"tokens": result.tokens, "keywords": result.keywords})


class KeywordDetailView(PlainJSONReads, APIView):
    """The count of one keyword."""

    @extend_schema(
        operation_id="keyword_read",
        summary="Count of one keyword",
        responses={200: OccurrenceSerializer},
    )
    def get(self, request: Request, keyword: str) -> Response:
        return Response(self.read(request, keyword))

    def read(self, request: HttpRequest | Request, keyword: str) -> dict[str, object]:
        services.require_ready()
        return _occurrences(services.lookup([keyword]))[0]


class ClusterView(APIView):
    """This node and each of its peers as runsync last saw them."""

    @extend_schema(
        operation_id="cluster_status",
        summary="Replication status",
        description=(
            "`node`: this node's id, incarnation, change sequence, keys, slots and tokenizer, and `pending`: "
            "why the node cannot yet prove its own slot complete (`reason`, null when it can), since when "
            "(`since`, Unix time), and the keys and increments it holds as pending until it has learned its "
            "slot from every seed (they are in its reads, and replicated once added to its slot). `peers`: for each "
            "seed, its address, node id, mode (native, legacy for counter-app, refused), whether it is reachable, "
            "the last successful sync and anti-entropy (Unix time), keys and bytes sent and received, errors, the "
            "last error, and `lag`: how many of this node's changes the peer has not acknowledged yet."
        ),
        responses={200: OpenApiTypes.OBJECT},
    )
    def get(self, request: Request) -> Response:
        return Response(services.cluster_status())
