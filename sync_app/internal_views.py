"""Internal routes (sync port, loopback + internal token) through which runsync drives replication.

They expose the node's ``Replica`` operations to runsync, which does the
network round trips with peers in its own process. Bodies are native protocol
messages, so nothing is encoded twice.
"""

from __future__ import annotations

from django.http import HttpResponse
from drf_spectacular.utils import extend_schema
from rest_framework.exceptions import ParseError
from rest_framework.parsers import JSONParser
from rest_framework.request import Request
from rest_framework.response import Response

from storage_app.http import read_body
from storage_app.internal_views import InternalView
from sync_app.core.protocol import CONTENT_TYPE, Cursor, Kind, Message, decode, encode
from sync_app.sync_state import current_sync


def _binary(message: Message) -> HttpResponse:
    return HttpResponse(encode(message), content_type=CONTENT_TYPE)


def _int(request: Request, name: str) -> int:
    try:
        return int(request.query_params[name])
    except (KeyError, ValueError):
        raise ParseError(f"query parameter {name} must be an integer") from None


@extend_schema(exclude=True)
class HelloView(InternalView):
    def get(self, request: Request) -> HttpResponse:
        return _binary(Message(Kind.EXCHANGE_RESPONSE, current_sync().replica.hello()))


@extend_schema(exclude=True)
class ChangesView(InternalView):
    """GET ?incarnation=&sequence=&max=&exclude=: our changes after a cursor."""

    def get(self, request: Request) -> HttpResponse:
        replica = current_sync().replica
        cursor = Cursor(_int(request, "incarnation"), _int(request, "sequence"))
        exclude = request.query_params.get("exclude")
        found, rows = replica.changes(cursor, _int(request, "max"), int(exclude) if exclude else None)
        return _binary(Message(Kind.EXCHANGE_RESPONSE, replica.hello(), cursor=found, rows=rows))


@extend_schema(exclude=True)
class MergeView(InternalView):
    """POST a message whose hello is the peer's and whose rows it sent."""

    def post(self, request: Request) -> Response:
        message = decode(read_body(request, 1 << 40, "internal"))
        return Response({"changed": current_sync().replica.merge(message.rows, origin=message.hello.node_id)})


@extend_schema(exclude=True)
class KeysView(InternalView):
    """GET ?incarnation=&sequence=: idempotency keys remembered after a cursor; POST: keys a peer sent."""

    def get(self, request: Request) -> HttpResponse:
        replica = current_sync().replica
        cursor, keys = replica.keys_since(Cursor(_int(request, "incarnation"), _int(request, "sequence")))
        return _binary(Message(Kind.EXCHANGE_RESPONSE, replica.hello(), keys_cursor=cursor, keys=keys))

    def post(self, request: Request) -> Response:
        message = decode(read_body(request, 1 << 40, "internal"))
        current_sync().replica.remember_keys(message.keys)
        return Response({"remembered": len(message.keys or ())})


@extend_schema(exclude=True)
class DigestsView(InternalView):
    def get(self, request: Request) -> HttpResponse:
        replica = current_sync().replica
        sequence, digests = replica.digests(_int(request, "bits"))
        cursor = Cursor(replica.incarnation, sequence)
        return _binary(Message(Kind.DIGEST_RESPONSE, replica.hello(), cursor=cursor, digests=digests))


@extend_schema(exclude=True)
class BucketsView(InternalView):
    """POST a message with bucket ids and a page: our rows of those buckets."""

    def post(self, request: Request) -> HttpResponse:
        message = decode(read_body(request, 1 << 40, "internal"))
        replica = current_sync().replica
        if message.bucket_ids is None or message.page is None:
            raise ParseError("a bucket request needs bucket ids and a page")
        rows, page = replica.bucket_rows(message.bucket_ids, message.bucket_bits, message.page)
        return _binary(Message(Kind.BUCKETS_RESPONSE, replica.hello(), rows=rows, page=page))


@extend_schema(exclude=True)
class WaitView(InternalView):
    """GET ?since=&timeout_ms=: returns once the change sequence passes ``since`` (long poll)."""

    def get(self, request: Request) -> Response:
        timeout = min(_int(request, "timeout_ms") / 1000, 30.0)
        return Response({"sequence": current_sync().replica.journal.wait_for_change(_int(request, "since"), timeout)})


@extend_schema(exclude=True)
class LeaveView(InternalView):
    """POST: this node leaves the cluster (decommission): no more client writes, members told it left."""

    def post(self, request: Request) -> Response:
        sync = current_sync()
        sync.node.close_writes()
        sync.membership.leaving = True
        return Response({"leaving": True})


@extend_schema(exclude=True)
class ForgetView(InternalView):
    """POST ?node=N: drop member N for good (the operator's ``forget``)."""

    def post(self, request: Request) -> Response:
        sync = current_sync()
        node_id = _int(request, "node")
        if node_id == sync.node.config.node_id:
            raise ParseError(f"node {node_id} is this node itself: run forget against another node")
        state = sync.membership.state_of(node_id)
        if state == "up" and request.query_params.get("force") != "1":
            raise ParseError(
                f"node {node_id} is up: decommission it instead (or say --force if it is gone for good "
                "and merely not yet shown as down)"
            )
        known = sync.membership.forget(node_id)
        return Response({"node_id": node_id, "was": state, "forgotten": known})


@extend_schema(exclude=True)
class StatusView(InternalView):
    """GET: what GET /cluster shows, plus runsync's own report fields, for the node's commands."""

    def get(self, request: Request) -> Response:
        return Response(current_sync().cluster_status())


@extend_schema(exclude=True)
class PeerReportView(InternalView):
    """POST runsync's report of its peers (JSON), shown by GET /cluster."""

    parser_classes = [JSONParser]

    def post(self, request: Request) -> Response:
        # A node with pending increments adds them to its slot once the report
        # shows it has learned its slot from every seed.
        sync = current_sync()
        folded = sync.take_report(dict(request.data))
        members = [member.as_list() for member in sync.membership.advertised()]
        return Response({"stored": True, "folded": folded, "members": members})
