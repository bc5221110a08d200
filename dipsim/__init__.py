"""dipsim: DIP/DRG hospital-payment simulation (grouping, pricing, regional point-value settlement, scenarios)."""

__version__ = "0.1.0"
