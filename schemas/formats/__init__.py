"""Input formats: Segment-spec and CloudEvents messages mapped to churnwatch events
(see ``decode`` and the mapping file in ``mapping``)."""

from schemas.formats.decode import Decoder, InputFormat
from schemas.formats.mapping import DEFAULT_MAPPING, InputMapping, MappingError, load_mapping

__all__ = ["DEFAULT_MAPPING", "Decoder", "InputFormat", "InputMapping", "MappingError",
           "load_mapping"]
