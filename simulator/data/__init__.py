"""Daily prices from the bundled set, a CSV folder or Yahoo, and weekly bars made from them."""

from simulator.data.sources import DailyData, load_daily, read_price_csv
from simulator.data.weekly import WeeklyData, make_weekly, to_weekly

__all__ = ["DailyData", "WeeklyData", "load_daily", "make_weekly", "read_price_csv", "to_weekly"]
