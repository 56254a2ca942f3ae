"""Time for the clinic: chronyd serves NTP to the internal zones from an upstream source, and the box
reports its own clock's state (for the web UI, the monthly report and the MHLW checklist's log evidence)."""
