"""The operator's change form: lab, config per device, expected effects, frameworks."""

from __future__ import annotations

from typing import Any

from django import forms
from django.conf import settings

from compliance.selectors import framework_choices
from preflight import services
from preflight.core.change import MAX_DEVICE_BYTES
from preflight.core.resilience import failures_option
from preflight.models import Lab

EXPECT_HELP = {
    "prefixes_added": "One per line: NODE PREFIX (NODE may be *), e.g. r1 10.42.0.0/24",
    "prefixes_removed": "One per line: NODE PREFIX",
    "sessions_removed": "One per line: NODE PEER, e.g. r1 10.0.12.1",
}


def _expect_lines(field: str, text: str) -> tuple[dict | list, list[str]]:
    """Parse 'NODE VALUE' lines of one expect field; returns (value, errors naming the line)."""
    errors: list[str] = []
    per_node: dict[str, list[str]] = {}
    pairs: list[dict[str, str]] = []
    for no, raw in enumerate(text.splitlines(), start=1):
        line = raw.strip()
        if not line or line.startswith("#"):
            continue
        parts = line.split()
        if len(parts) != 2:
            errors.append(f"Line {no} ({line!r}): write NODE and one value separated by a space.")
            continue
        node, value = parts
        if field.startswith("sessions"):
            pairs.append({"node": node, "peer": value})
        else:
            per_node.setdefault(node, []).append(value)
    return (pairs if field.startswith("sessions") else per_node), errors


class ChangeForm(forms.Form):
    lab = forms.ModelChoiceField(
        queryset=Lab.objects.none(), empty_label=None, help_text="The twin that runs this change."
    )
    title = forms.CharField(
        max_length=200, widget=forms.TextInput(attrs={"placeholder": "One line: what and why"})
    )
    description = forms.CharField(required=False, widget=forms.Textarea(attrs={"rows": 2}))
    intent = forms.CharField(
        required=False,
        widget=forms.Textarea(attrs={"rows": 2}),
        help_text="Or describe the change in words; the LLM proposes config per device.",
    )
    prefixes_added = forms.CharField(
        required=False, widget=forms.Textarea(attrs={"rows": 2}), help_text=EXPECT_HELP["prefixes_added"]
    )
    prefixes_removed = forms.CharField(
        required=False, widget=forms.Textarea(attrs={"rows": 2}), help_text=EXPECT_HELP["prefixes_removed"]
    )
    sessions_removed = forms.CharField(
        required=False, widget=forms.Textarea(attrs={"rows": 2}), help_text=EXPECT_HELP["sessions_removed"]
    )
    frameworks = forms.MultipleChoiceField(required=False, widget=forms.CheckboxSelectMultiple)
    backend = forms.ChoiceField(help_text="netns: real FRR daemons. simulator: quick, never promotable.")
    failures = forms.CharField(
        required=False, max_length=10, label="Failure scenarios",
        widget=forms.TextInput(attrs={"placeholder": "auto", "size": 6}),
        help_text="Run before and after the change: auto (the lab's and one per link of the changed routers), "
                  "all, none, or a number.",
    )

    def clean_failures(self) -> str | None:
        try:
            return failures_option(self.cleaned_data.get("failures"))
        except ValueError as exc:
            raise forms.ValidationError(str(exc)) from None

    def __init__(self, *args: Any, lab: Lab | None, **kwargs: Any):
        super().__init__(*args, **kwargs)
        self.fields["lab"].queryset = Lab.objects.filter(enabled=True)
        self.fields["frameworks"].choices = [(f["id"], f["title"]) for f in framework_choices()]
        self.fields["backend"].choices = [(b, b) for b in services.BACKENDS]
        self.fields["backend"].initial = settings.AEGIS_TWIN_BACKEND
        self.fields["frameworks"].initial = [f for f in settings.AEGIS_FRAMEWORKS]
        self.lab_obj = lab
        self.device_names = list(lab.routers) if lab else []
        for node in self.device_names:
            crit = (lab.criticality or {}).get(node, "") if lab else ""
            self.fields[f"device_{node}"] = forms.CharField(
                required=False,
                label=node,
                strip=False,
                widget=forms.Textarea(
                    attrs={
                        "rows": 5,
                        "spellcheck": "false",
                        "class": "mono",
                        "placeholder": "config lines, as entered in configure mode",
                    }
                ),
                help_text=f"criticality: {crit}" if crit else "",
            )
            self.fields[f"desired_file_{node}"] = forms.FileField(
                required=False, label=f"{node}: full config file",
                help_text="or upload the router's whole intended frr.conf: AEGIS shows frr-reload's delta first")
        self.submission: services.Submission | None = None

    def device_fields(self) -> list[forms.BoundField]:
        return [self[f"device_{n}"] for n in self.device_names]

    def desired_fields(self) -> dict[str, forms.BoundField]:
        return {n: self[f"desired_file_{n}"] for n in self.device_names}

    def _desired(self) -> dict[str, str]:
        """Uploaded full configs per router; after a preview they come back as `desired_text_<node>`."""
        desired: dict[str, str] = {}
        for node in self.device_names:
            upload = self.cleaned_data.get(f"desired_file_{node}")
            if upload is not None:
                if upload.size > MAX_DEVICE_BYTES:
                    self.add_error(f"desired_file_{node}", f"larger than {MAX_DEVICE_BYTES // 1024} KiB")
                    continue
                try:
                    desired[node] = upload.read().decode("utf-8")
                except UnicodeDecodeError:
                    self.add_error(f"desired_file_{node}", "not UTF-8 text: upload the frr.conf as saved by FRR")
            elif (self.data.get(f"desired_text_{node}") or "").strip():
                desired[node] = self.data[f"desired_text_{node}"]
        return desired

    def expect_fields(self) -> list[forms.BoundField]:
        return [self["prefixes_added"], self["prefixes_removed"], self["sessions_removed"]]

    def clean(self) -> dict[str, Any]:
        data = super().clean()
        lab = data.get("lab")
        if lab is None:
            return data
        if self.lab_obj is None or lab.pk != self.lab_obj.pk:
            self.add_error("lab", "The lab changed; fill in the devices of this lab and submit again.")
            return data
        expect: dict[str, Any] = {}
        for field in ("prefixes_added", "prefixes_removed", "sessions_removed"):
            value, errors = _expect_lines(field, data.get(field) or "")
            for error in errors:
                self.add_error(field, error)
            if value:
                expect[field] = value
        devices = {n: data.get(f"device_{n}") or "" for n in self.device_names}
        desired = self._desired()
        if desired and any(t.strip() for t in devices.values()):
            self.add_error(None, "Give either config lines or full config files (desired state), not both.")
        self.submission = services.Submission(
            lab=lab,
            title=data.get("title") or "",
            description=data.get("description") or "",
            devices={n: t for n, t in devices.items() if t.strip()},
            desired=desired or None,
            intent=data.get("intent") or "",
            expect=expect or None,
            frameworks=data.get("frameworks") or [],
            backend=data.get("backend") or "",
            options={"failures": data["failures"]} if data.get("failures") else {},
            source="form",
        )
        return data

    def apply_errors(self, errors: dict[str, list[str]]) -> None:
        """Show a ChangeInvalid's messages next to the field they are about."""
        for key, messages in errors.items():
            field: str | None
            if key.startswith("device:"):
                field = f"device_{key.split(':', 1)[1]}"
            elif key.startswith("desired:"):
                field = f"desired_file_{key.split(':', 1)[1]}"
            elif key == "expect":
                field = None
            elif key == "__all__":
                field = None
            else:
                field = key
            if field is not None and field not in self.fields:
                field = None
            for message in messages:
                self.add_error(field, message)
