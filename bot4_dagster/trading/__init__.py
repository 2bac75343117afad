"""Trading: risk clamps (``risk``), contingent orders (``orders``, ``manager``), paper exchange.

The names a caller needs are re-exported here::

    from bot4_dagster.trading import OrderManager, PaperExchange, Instrument, Side
"""

from .manager import OrderConfig, OrderManager
from .orders import (
    ContingencyType,
    DenialCode,
    Instrument,
    ListKind,
    ListStatus,
    Order,
    OrderDenied,
    OrderList,
    OrderSpec,
    OrderStatus,
    OrderType,
    OtoTrigger,
    PartialFillPolicy,
    Side,
    TradingState,
)
from .paper import Bar, FeeModel, PaperExchange, SlippageModel, Trade, pump
from .store import MemoryStore, SQLiteStore
from .venue import RecordingVenue

__all__ = [
    "Bar", "ContingencyType", "DenialCode", "FeeModel", "Instrument", "ListKind", "ListStatus",
    "MemoryStore", "Order", "OrderConfig", "OrderDenied", "OrderList", "OrderManager",
    "OrderSpec", "OrderStatus", "OrderType", "OtoTrigger", "PaperExchange", "PartialFillPolicy",
    "RecordingVenue", "SQLiteStore", "Side", "SlippageModel", "Trade", "TradingState", "pump",
]
