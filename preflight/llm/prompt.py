"""The prompt: what a network engineer looks at before writing a change, from the lab itself.

The template lives in a versioned file beside this module (`prompts/propose-v1.txt`); its
version line and the sha256 of its bytes go into the proposal's provenance, so an auditor
can tell exactly which wording produced a proposal.
"""

from __future__ import annotations

import hashlib
import json
import re
from dataclasses import dataclass
from pathlib import Path
from string import Template
from typing import Any

from twin.base import Topology

PROMPTS_DIR = Path(__file__).resolve().parent / "prompts"
PROMPT_TEMPLATE = "propose-v1.txt"
# FRR dialect the prompt names when the lab does not say (the version Debian 12 ships).
DEFAULT_FRR_VERSION = "8.4"
# Whole running configs for the routers concerned, but bounded: a large fabric must not
# blow the model's context window. Routers beyond the budget are summarised only.
CONFIG_BUDGET_CHARS = 6000

# Lines of a running config that tell the model nothing about routing.
_BOILERPLATE = re.compile(
    r"^\s*(!.*|frr version .*|frr defaults .*|log .*|service .*|line vty|end|hostname .*|)\s*$"
)


class PromptError(ValueError):
    """The prompt template is missing or malformed (an installation problem)."""


@dataclass(frozen=True)
class PromptTemplate:
    name: str
    version: str
    sha256: str
    system: Template
    user: Template

    def provenance(self) -> dict[str, str]:
        return {"name": self.name, "version": self.version, "sha256": self.sha256}


def prompt_template_load(name: str = PROMPT_TEMPLATE) -> PromptTemplate:
    """Read a versioned template file: a `# aegis-prompt: VERSION` line, then system and user parts."""
    path = PROMPTS_DIR / name
    try:
        raw = path.read_bytes()
    except OSError as exc:
        raise PromptError(f"prompt template {path} cannot be read: {exc.strerror}") from None
    text = raw.decode("utf-8")
    version_match = re.search(r"^# aegis-prompt: (\S+)$", text, re.MULTILINE)
    if not version_match or "=== system ===" not in text or "=== user ===" not in text:
        raise PromptError(f"prompt template {path} lacks its '# aegis-prompt: VERSION' line or its sections")
    body = text.split("=== system ===", 1)[1]
    system, user = body.split("=== user ===", 1)
    return PromptTemplate(
        name=name,
        version=version_match.group(1),
        sha256=hashlib.sha256(raw).hexdigest(),
        system=Template(system.strip()),
        user=Template(user.strip()),
    )


@dataclass
class DeviceFacts:
    name: str
    asn: int | None
    router_id: str | None
    interfaces: list[tuple[str, list[str], str]]  # (name, addresses, description)
    neighbors: list[tuple[str, str, str]]  # (address, remote-as, description)
    networks: list[str]
    policy: list[str]  # route-map and prefix-list names
    criticality: str

    def line(self, *, brief: bool = False) -> str:
        """One router for the prompt; `brief` when its whole config is shown below anyway."""
        parts = [f"- {self.name}"]
        if self.asn is not None:
            parts.append(f"AS {self.asn}")
        if self.router_id:
            parts.append(f"router-id {self.router_id}")
        if self.criticality:
            parts.append(f"criticality {self.criticality}")
        out = [", ".join(parts) + (" (full configuration below)" if brief else "")]
        if brief:
            return out[0]
        for iface, addresses, description in self.interfaces:
            text = f"    interface {iface} {' '.join(addresses) or '(no address)'}"
            out.append(text + (f" ({description})" if description else ""))
        for address, remote_as, description in self.neighbors:
            out.append(
                f"    bgp neighbor {address} remote-as {remote_as}"
                + (f" ({description})" if description else "")
            )
        if self.networks:
            out.append(f"    announces {', '.join(self.networks)}")
        if self.policy:
            out.append(f"    policy objects {', '.join(self.policy)}")
        return "\n".join(out)


def device_facts(name: str, frr_conf: str, labels: dict[str, str] | None = None) -> DeviceFacts:
    """The facts an engineer reads off a running config: AS, interfaces, neighbours, policy."""
    asn = None
    router_id = None
    interfaces: dict[str, tuple[list[str], str]] = {}
    neighbors: dict[str, list[str]] = {}
    networks: list[str] = []
    policy: list[str] = []
    current_iface: str | None = None
    for raw in frr_conf.splitlines():
        line = raw.rstrip()
        stripped = line.strip()
        if not line.startswith(" "):
            current_iface = None
        if m := re.match(r"^interface (\S+)", line):
            current_iface = m.group(1)
            interfaces.setdefault(current_iface, ([], ""))
        elif current_iface and (m := re.match(r"ip(?:v6)? address (\S+)", stripped)):
            interfaces[current_iface][0].append(m.group(1))
        elif current_iface and (m := re.match(r"description (.+)", stripped)):
            interfaces[current_iface] = (interfaces[current_iface][0], m.group(1))
        elif m := re.match(r"^router bgp (\d+)", line):
            asn = int(m.group(1))
        elif m := re.match(r"bgp router-id (\S+)", stripped):
            router_id = m.group(1)
        elif m := re.match(r"neighbor (\S+) remote-as (\S+)", stripped):
            neighbors.setdefault(m.group(1), ["", ""])[0] = m.group(2)
        elif m := re.match(r"neighbor (\S+) description (.+)", stripped):
            neighbors.setdefault(m.group(1), ["", ""])[1] = m.group(2)
        elif m := re.match(r"network (\S+)$", stripped):
            networks.append(m.group(1))
        elif m := re.match(r"^(route-map|ip prefix-list|ipv6 prefix-list|bgp community-list) (\S+)", line):
            label = f"{m.group(1)} {m.group(2)}"
            if label not in policy:
                policy.append(label)
    return DeviceFacts(
        name=name,
        asn=asn,
        router_id=router_id,
        interfaces=[(iface, addrs, desc) for iface, (addrs, desc) in interfaces.items()],
        neighbors=[(addr, info[0], info[1]) for addr, info in neighbors.items()],
        networks=networks,
        policy=policy,
        criticality=(labels or {}).get("aegis.criticality", ""),
    )


def config_relevant_lines(frr_conf: str) -> str:
    """The running config without boilerplate (version, logging, comments, vty)."""
    return "\n".join(line.rstrip() for line in frr_conf.splitlines() if not _BOILERPLATE.match(line))


def devices_concerned(intent: str, routers: list[str]) -> list[str]:
    """Routers the intent names; all of them when it names none."""
    named = [r for r in routers if re.search(rf"(?<![\w-]){re.escape(r)}(?![\w-])", intent, re.IGNORECASE)]
    return named or list(routers)


def answer_shape_example(routers: list[str]) -> str:
    first = routers[0] if routers else "r1"
    example = {
        "devices": {first: "ip route 198.51.100.0/24 Null0\n"},
        "expect": {
            "prefixes_added": {first: ["198.51.100.0/24"]},
            "prefixes_removed": {},
            "sessions_removed": [],
        },
        "rationale": "A static discard route for the new prefix.",
    }
    return json.dumps(example)


def prompt_build(
    intent: str, topology: Topology, template: PromptTemplate, *, frr_version: str = ""
) -> list[dict[str, str]]:
    """The chat messages for one proposal: system rules, then the lab and the intent."""
    routers = topology.routers()
    facts = [
        device_facts(name, topology.nodes[name].frr_conf or "", topology.nodes[name].labels)
        for name in routers
    ]
    links = [f"- {link.a.node}:{link.a.iface} <-> {link.b.node}:{link.b.iface}" for link in topology.links]
    configs: list[str] = []
    shown: set[str] = set()
    budget = CONFIG_BUDGET_CHARS
    for name in devices_concerned(intent, routers):
        text = config_relevant_lines(topology.nodes[name].frr_conf or "")
        if len(text) > budget:
            configs.append(f"[{name}] (config omitted: over the prompt budget; see the summary above)")
            continue
        budget -= len(text)
        shown.add(name)
        configs.append(f"[{name}]\n{text}")
    values: dict[str, Any] = {
        "lab_name": topology.name,
        "frr_version": frr_version or DEFAULT_FRR_VERSION,
        "device_names": ", ".join(routers),
        "devices": "\n".join(f.line(brief=f.name in shown) for f in facts),
        "links": "\n".join(links) or "(none)",
        "configs": "\n\n".join(configs) or "(none)",
        "intent": intent,
        "answer_shape": answer_shape_example(routers),
    }
    return [
        {"role": "system", "content": template.system.substitute(values)},
        {"role": "user", "content": template.user.substitute(values)},
    ]


def prompt_text(messages: list[dict[str, str]]) -> str:
    """The full prompt as one text, for provenance and the PDF."""
    return "\n\n".join(f"[{m['role']}]\n{m['content']}" for m in messages)
