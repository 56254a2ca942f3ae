"""The one declarative config: its typed model, loading, migrations and Japanese/English error messages."""

from appliance.config.load import dump_config, load_config, load_config_text, parse_config
from appliance.config.model import MamoriConfig

__all__ = ["MamoriConfig", "dump_config", "load_config", "load_config_text", "parse_config"]
