"""Reference data every platform starts with: languages, timezones, currencies,
countries (with their E.164 calling codes, ITU-T E.164 Annex) and feature toggles.

A handful of each; administrators add more through the API. Migration 0002
inserts exactly these rows: do not edit them, add rows with a new migration.
"""

from __future__ import annotations

LANGUAGES = (("en", "English"), ("es", "Español"), ("ca", "Català"), ("it", "Italiano"))

TIMEZONES = (
    ("UTC", "UTC"),
    ("Europe/Madrid", "Madrid"),
    ("Europe/London", "London"),
    ("Europe/Lisbon", "Lisbon"),
    ("Europe/Paris", "Paris"),
    ("Europe/Berlin", "Berlin"),
    ("Europe/Rome", "Rome"),
    ("America/New_York", "New York"),
    ("America/Chicago", "Chicago"),
    ("America/Los_Angeles", "Los Angeles"),
    ("America/Mexico_City", "Mexico City"),
    ("America/Sao_Paulo", "São Paulo"),
    ("Asia/Tokyo", "Tokyo"),
    ("Australia/Sydney", "Sydney"),
)

CURRENCIES = (
    ("EUR", "Euro", "€"),
    ("USD", "US dollar", "$"),
    ("GBP", "Pound sterling", "£"),
    ("MXN", "Mexican peso", "$"),
)

# ISO 3166-1 alpha-2 code, name, E.164 country calling code.
COUNTRIES = (
    ("ES", "Spain", "34"),
    ("GB", "United Kingdom", "44"),
    ("US", "United States", "1"),
    ("CA", "Canada", "1"),
    ("FR", "France", "33"),
    ("DE", "Germany", "49"),
    ("IT", "Italy", "39"),
    ("PT", "Portugal", "351"),
    ("IE", "Ireland", "353"),
    ("NL", "Netherlands", "31"),
    ("MX", "Mexico", "52"),
    ("BR", "Brazil", "55"),
    ("AR", "Argentina", "54"),
    ("JP", "Japan", "81"),
    ("AU", "Australia", "61"),
)

# Feature toggles per brand and per client (FEATURES.md row 3).
FEATURES = (
    ("queues", "Queues"),
    ("recordings", "Recordings"),
    ("faxes", "Faxes"),
    ("friends", "Friends"),
    ("conferences", "Conferences"),
    ("billing", "Billing"),
    ("invoices", "Invoices"),
    ("voicemail", "Voicemail"),
    ("vpbx", "vPBX clients"),
    ("residential", "Residential clients"),
    ("retail", "Retail clients"),
    ("wholesale", "Wholesale clients"),
)
