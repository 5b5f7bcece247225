"""syncd: keeps CRM activities and their owners' calendars in step, both ways."""

__version__ = "0.1.0"
