"""SLA engine: policies, business-hours calendars and durable timers."""
