"""Software updates, the control plane: find, fetch, verify and stage a signed bundle, then ask the root side.

Modules, one job each:
- `version`: parse and compare image versions.
- `errors`: the refusals, each with a stable code and Japanese and English text.
- `manifest`: a bundle's (or the index's) signed text and its Ed25519 signature.
- `bundle`: read a bundle tar, check its members, signature and hashes.
- `box`: what this box is (image version, architecture, slots) and where the update files live.
- `policy`: may this verified bundle be installed here (downgrade, architecture, min-from-version).
- `stage`: verify an incoming file and rename it into `staged/`; write the install request.
- `index`, `fetch`, `rollout`, `schedule`: the vendor's signed index, HTTPS download, staged release, quiet hours.
- `worker`, `daemon`: the daemon's scheduled check. `cli`, `web`: `mamori update …` and 「ソフトウェア更新」.

Non-goal: writing a partition, the ESP or a boot entry. That is the image's root installer (`mamori-update`),
which takes one file name from `request.json` (docs/update.md, the contract).
"""
