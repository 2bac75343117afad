"""The manager's only way out: three request types and a three-method venue protocol.

Contract a venue adapter must honour (the restart logic relies on it): ``submit`` is idempotent
per ``order_id`` (a venue de-duplicates client order ids), ``modify`` carries absolute values, and
``cancel`` of an unknown or closed order is a no-op. With that, re-sending the desired state of
every live order after a crash can never double an order.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from decimal import Decimal
from typing import Protocol

from .orders import Order, OrderType, Side


@dataclass(slots=True)
class SubmitOrder:
    order_id: str
    instrument: str
    side: Side
    type: OrderType
    qty: Decimal
    price: Decimal | None
    trigger_price: Decimal | None
    reduce_only: bool
    list_id: str | None
    linked_ids: tuple[str, ...]
    expire_ts: int | None
    ts: int

    @classmethod
    def of(cls, order: Order, ts: int) -> SubmitOrder:
        return cls(order.id, order.instrument, order.side, order.type, order.qty, order.price,
                   order.trigger_price, order.reduce_only, order.list_id, order.linked_ids,
                   order.expire_ts, ts)


@dataclass(slots=True)
class ModifyOrder:
    order_id: str
    instrument: str
    qty: Decimal
    price: Decimal | None
    trigger_price: Decimal | None
    ts: int

    @classmethod
    def of(cls, order: Order, ts: int) -> ModifyOrder:
        return cls(order.id, order.instrument, order.qty, order.price, order.trigger_price, ts)


@dataclass(slots=True)
class CancelOrder:
    order_id: str
    instrument: str
    ts: int


Request = SubmitOrder | ModifyOrder | CancelOrder


class Venue(Protocol):
    """Where requests go. Implementations report back through ``OrderManager.apply(event)``;
    events raised synchronously inside these calls are queued, never handled re-entrantly."""

    def submit(self, request: SubmitOrder) -> None: ...

    def modify(self, request: ModifyOrder) -> None: ...

    def cancel(self, request: CancelOrder) -> None: ...


@dataclass
class RecordingVenue:
    """A venue that only records what it was asked (dry runs, shadow mode, tests)."""

    requests: list[Request] = field(default_factory=list)

    def submit(self, request: SubmitOrder) -> None:
        self.requests.append(request)

    def modify(self, request: ModifyOrder) -> None:
        self.requests.append(request)

    def cancel(self, request: CancelOrder) -> None:
        self.requests.append(request)

    def of_type(self, kind: type) -> list[Request]:
        return [r for r in self.requests if isinstance(r, kind)]
