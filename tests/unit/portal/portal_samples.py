"""Valid create payloads per (level, entity path), built on a seeded tenant.

``FOREIGN`` names, per path, the payload fields that point at tenant-owned objects:
the matrix test swaps them for another tenant's objects and expects a refusal.
"""

from __future__ import annotations

from typing import Any

from portal_harness import Seed, Tenant


def payloads(level: str, seed: Seed, t: Tenant, n: int = 0) -> dict[str, dict[str, Any]]:
    i = t.ids
    if level == "platform":
        return {
            "brands": {"name": f"New brand {n}", "feature_ids": [1]},
            "companies": {
                "brand_id": t.brand_id,
                "name": f"NewCo {n}",
                "type": "vpbx",
                "domain": f"newco{n}.test",
                "allowed_cidrs": ["192.0.2.0/24"],
            },
            "administrators": {
                "username": f"padm{n}",
                "password": "longenough1",
                "level": "platform",
            },
            "web-portals": {"url": f"https://p{n}.portal.test", "level": "platform"},
            "administrator-grants": {"administrator_id": i["administrators"], "entity": "Carrier"},
            "languages": {"iden": f"x{n}", "name": "X"},
            "timezones": {"tz": f"Test/Zone{n}"},
            "currencies": {"iden": f"X{n}Y"[:3], "name": "x"},
            "countries": {"code": "XQ", "name": "X", "calling_code": "999"},
            "features": {"iden": f"newf{n}", "name": "New"},
            "application-server-sets": {"name": f"set{n}"},
            "media-relay-sets": {"name": f"mrs{n}"},
            "application-servers": {"name": f"as{n}", "ip": f"127.0.1.{n + 2}"},
            "proxy-users": {"name": f"pu{n}", "ip": f"127.0.2.{n + 2}"},
            "proxy-trunks": {"name": f"pt{n}", "ip": f"127.0.3.{n + 2}"},
            "transformation-rule-sets": {"name": f"generic{n}"},
        }
    if level == "brand":
        return {
            "companies": {
                "name": f"NewCo {n}",
                "type": "retail",
                "transformation_rule_set_id": i["transformation-rule-sets"],
            },
            "administrators": {
                "username": f"cadm{n}",
                "password": "longenough1",
                "level": "client",
                "company_id": t.company_id,
            },
            "administrator-grants": {
                "administrator_id": i["administrators"],
                "entity": "Company",
                "can_write": True,
            },
            "web-portals": {
                "url": f"https://c{n}.portal.test",
                "level": "client",
                "company_id": t.company_id,
                "colour": "#AABBCC",
            },
            "carriers": {
                "name": f"c{n}",
                "transformation_rule_set_id": i["transformation-rule-sets"],
            },
            "carrier-servers": {"carrier_id": t.carrier_id, "host": "10.0.0.1", "port": 5060},
            "ddi-providers": {"name": f"p{n}"},
            "ddi-provider-addresses": {
                "ddi_provider_id": t.ddi_provider_id,
                "ip": f"192.0.2.{n + 99}",
            },
            "ddi-provider-registrations": {
                "ddi_provider_id": t.ddi_provider_id,
                "username": "u",
                "domain": "x.test",
            },
            "routing-patterns": {"name": "France", "prefix": f"+33{n}"},
            "routing-pattern-groups": {
                "name": f"G{n}",
                "routing_pattern_ids": [i["routing-patterns"]],
            },
            "outgoing-routings": {
                "type": "pattern",
                "routing_pattern_id": i["routing-patterns"],
                "carrier_ids": [t.carrier_id],
                "company_id": t.company_id,
            },
            "ddis": {
                "ddi_e164": f"+3491199999{n}",
                "company_id": t.company_id,
                "ddi_provider_id": t.ddi_provider_id,
            },
            "transformation-rule-sets": {
                "name": f"r{n}",
                "rules": [{"direction": "callee_in", "match": "^0", "replace": "+34"}],
            },
        }
    if level == "client":
        return {
            "users": {
                "name": "Carol",
                "email": f"carol{n}@x.test",
                "password": "longenough1",
                "terminal_id": i["terminals"],
            },
            "terminals": {
                "name": f"t{n}",
                "sip_username": f"carol{n}",
                "sip_password": "pw123456",
                "allowed_codecs": ["PCMA", "opus"],
            },
            "extensions": {"number": f"20{n}0", "route_type": "user", "user_id": t.user_id},
            "friends": {"name": f"f{n}", "auth_mode": "ip", "ip": "192.0.2.50", "patterns": ["^9"]},
            "retail-accounts": {"name": f"retail{n}x", "sip_password": "pw"},
            "residential-devices": {"name": f"res{n}x", "sip_password": "pw"},
            "administrators": {"username": f"cadm{n}", "password": "longenough1"},
            "administrator-grants": {
                "administrator_id": i["client-administrators"],
                "entity": "Terminal",
            },
            "call-forward-settings": {
                "user_id": t.user_id,
                "kind": "noanswer",
                "target_type": "number",
                "target": "+34911000111",
            },
        }
    if level == "user":
        return {"call-forwards": {"kind": "unconditional", "target": "1002"}}
    return {}


# Fields that reference another tenant's objects, per (level, path): field -> key in Tenant.ids.
FOREIGN: dict[tuple[str, str], dict[str, str]] = {
    ("brand", "companies"): {"transformation_rule_set_id": "transformation-rule-sets"},
    ("brand", "administrators"): {"company_id": "companies"},
    ("brand", "administrator-grants"): {"administrator_id": "administrators"},
    ("client", "administrator-grants"): {"administrator_id": "client-administrators"},
    ("brand", "web-portals"): {"company_id": "companies"},
    ("brand", "carriers"): {"transformation_rule_set_id": "transformation-rule-sets"},
    ("brand", "carrier-servers"): {"carrier_id": "carriers"},
    ("brand", "ddi-provider-addresses"): {"ddi_provider_id": "ddi-providers"},
    ("brand", "ddi-provider-registrations"): {"ddi_provider_id": "ddi-providers"},
    ("brand", "routing-pattern-groups"): {"routing_pattern_ids": "routing-patterns"},
    ("brand", "outgoing-routings"): {
        "routing_pattern_id": "routing-patterns",
        "carrier_ids": "carriers",
        "company_id": "companies",
    },
    ("brand", "ddis"): {"company_id": "companies", "ddi_provider_id": "ddi-providers"},
    ("client", "users"): {"terminal_id": "terminals"},
    ("client", "extensions"): {"user_id": "users"},
    ("client", "call-forward-settings"): {"user_id": "users"},
}
