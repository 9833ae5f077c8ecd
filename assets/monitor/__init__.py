"""The system_logs monitor: every event of the platform's Kafka topics and every JSON log line of its
processes, indexed into daily search indices behind one alias, with a bounded local fallback file
replayed exactly once when the search engine is back.

Declare it with ``type: assets.monitor.SystemLogsMonitor`` (``assets/defs/monitor/system_logs``);
``run_pass`` is one pass without Dagster (tests, scripts).
"""

from assets.monitor._pass import MonitorConfig, PassReport, run_pass
from assets.monitor.component import SystemLogsMonitor

__all__ = ["MonitorConfig", "PassReport", "SystemLogsMonitor", "run_pass"]
