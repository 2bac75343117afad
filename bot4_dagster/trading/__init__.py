"""Trading: risk clamps (``risk``), contingent orders (``orders``, ``manager``), paper exchange.

The names a caller needs are re-exported here::

    from bot4_dagster.trading import OrderManager, PaperExchange, Instrument, Side

One vocabulary serves both layers: ``Side``, ``TradingState``, ``DenialCode`` and the two
refusals (``vocabulary``), one ``Instrument`` (``instrument``), one clock unit, int nanoseconds
(``clock``), and one ``Throttle`` (``throttle``).
"""

from .instrument import Instrument
from .lifecycle import ORDER_STATE_TABLE, IllegalTransition
from .manager import OrderConfig, OrderManager
from .orders import (
    ContingencyType,
    ListKind,
    ListStatus,
    Order,
    OrderList,
    OrderSpec,
    OrderStatus,
    OrderType,
    OtoTrigger,
    PartialFillPolicy,
)
from .paper import Bar, FeeModel, PaperExchange, SlippageModel, Trade, pump
from .store import MemoryStore, SQLiteStore
from .throttle import Throttle
from .venue import RecordingVenue
from .vocabulary import DenialCode, OrderDenied, Side, TradingState, VenueEventRejected

__all__ = [
    "ORDER_STATE_TABLE", "Bar", "ContingencyType", "DenialCode", "FeeModel", "IllegalTransition",
    "Instrument", "ListKind", "ListStatus", "MemoryStore", "Order", "OrderConfig", "OrderDenied",
    "OrderList", "OrderManager", "OrderSpec", "OrderStatus", "OrderType", "OtoTrigger",
    "PaperExchange", "PartialFillPolicy", "RecordingVenue", "SQLiteStore", "Side",
    "SlippageModel", "Throttle", "Trade", "TradingState", "VenueEventRejected", "pump",
]
