"""Web UI (Flask): Japanese pages for the clinic and the vendor."""
