"""The order-status transition table, after NautilusTrader's ``_ORDER_STATE_TABLE``.

``Book.set_status`` refuses any change not listed here, so the lifecycle is a checked contract
rather than a convention spread over the rules. Differences from Nautilus, because this manager
has no TRIGGERED / PENDING_UPDATE / EMULATED states and PENDING plays Nautilus' SUBMITTED:

- a partial fill while PENDING_CANCEL, CANCELED or EXPIRED keeps the status (the cancel still
  stands); a late fill that completes the order makes it FILLED (Nautilus allows CANCELED ->
  FILLED as a "real world possibility"; an expiry races a fill the same way);
- a held order (INITIALIZED) is cancelled locally or denied when its parent is rejected.
"""

from __future__ import annotations

from .orders import OrderStatus

S = OrderStatus
ORDER_STATE_TABLE: dict[OrderStatus, frozenset[OrderStatus]] = {
    S.INITIALIZED: frozenset({S.PENDING, S.CANCELED, S.DENIED}),
    S.PENDING: frozenset({S.ACCEPTED, S.PARTIALLY_FILLED, S.FILLED, S.PENDING_CANCEL, S.CANCELED,
                          S.REJECTED, S.EXPIRED}),
    S.ACCEPTED: frozenset({S.PARTIALLY_FILLED, S.FILLED, S.PENDING_CANCEL, S.CANCELED,
                           S.REJECTED, S.EXPIRED}),
    S.PARTIALLY_FILLED: frozenset({S.FILLED, S.PENDING_CANCEL, S.CANCELED, S.EXPIRED}),
    S.PENDING_CANCEL: frozenset({S.FILLED, S.CANCELED, S.EXPIRED, S.REJECTED}),
    S.CANCELED: frozenset({S.FILLED}),
    S.EXPIRED: frozenset({S.FILLED}),
    S.FILLED: frozenset(),
    S.REJECTED: frozenset(),
    S.DENIED: frozenset(),
}
"""status -> the statuses it may change to."""

NEVER_SENT = frozenset({S.INITIALIZED, S.DENIED})
"""Statuses of orders the venue has never been asked about: any venue event for one is out of
order."""


class IllegalTransition(RuntimeError):
    """The manager tried a status change the table does not allow (a bug, never a venue's fault:
    venue events are checked against the table before they are applied)."""

    def __init__(self, order_id: str, old: OrderStatus, new: OrderStatus) -> None:
        self.order_id, self.old, self.new = order_id, old, new
        super().__init__(f"order {order_id}: {old} -> {new} is not in ORDER_STATE_TABLE")


def allowed(old: OrderStatus, new: OrderStatus) -> bool:
    return new in ORDER_STATE_TABLE[old]
