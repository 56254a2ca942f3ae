"""One blueprint per area of the web UI; templates in webui/templates/<blueprint>/."""
