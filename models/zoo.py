"""Imports every builder module so that their models register (see registry._load_zoo)."""

import kzoo.models.one_to_one  # noqa: F401,E402
import kzoo.models.one_to_many  # noqa: F401,E402
import kzoo.models.many_to_one  # noqa: F401,E402
import kzoo.models.many_to_many  # noqa: F401,E402
import kzoo.models.seq2seq  # noqa: F401,E402
