"""The fleet API: config as code for the vendor's fleet (issue 15).

A small JSON API in the web UI process (`fleetapi.api`, /api/v1) through which a vendor's Ansible run
(`fleet/ansible/`, collection mamori.clinic) reads, validates, diffs, applies with commit-confirm and
confirms the box's config over the management link. It adds no second path for changes: every apply goes
through ConfigService with the vendor account's authority, like the web UI's review page.

Parts: `model` (the `fleet:` config section: the clinic's switch), `tokens` (per-vendor-account API tokens,
stored hashed), `linkguard` (which changes would cut the management link), `api` (the blueprint), `cli`
(`mamori fleet token ...`), `web` (the administrator's token page). docs/fleet-ansible.md has the design.
"""
