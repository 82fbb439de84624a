"""foliosim's composition root: data, weekly bars, the backtrader engine, reports and the CLI."""

__version__ = "0.1.0"
