"""Logs to any SIEM (issue 14.6): audit entries, apply/update events, incidents and alerts from a set
severity go out as RFC 5424 syslog over TLS (RFC 5425) to the vendor's or clinic's collector.

The box's own rsyslog does the transport (TLS, a disk-assisted queue with a size budget, retry for ever,
in order); Mamori turns its records into messages and hands them over through an append-only spool that
rsyslog's imfile reads with its persistent state. See docs/siem.md for why and how.
"""
