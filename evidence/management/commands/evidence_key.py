"""`manage.py evidence_key show|export|rotate`: the site signing key and the trusted keyring."""

from __future__ import annotations

from pathlib import Path

from django.conf import settings
from django.core.management.base import BaseCommand, CommandError


class Command(BaseCommand):
    help = "Show, export or rotate the site's Ed25519 signing key (old public keys stay trusted)."

    def add_arguments(self, parser):
        parser.add_argument("action", choices=["show", "export", "rotate"])
        parser.add_argument("--out", help="export: write the public keys into this folder")

    def handle(self, *args, **opts):
        from evidence.core.keys import KeyFileError, public_key_pem, signing_key_rotate
        from evidence.services import keyring_dir, site_key, trusted_keys

        try:
            key = site_key()
            if opts["action"] == "rotate":
                old, key = signing_key_rotate(settings.AEGIS_SITE_KEY_FILE, keyring_dir())
                self.stdout.write(f"retired {old.keyid} (still trusted for verification)")
        except KeyFileError as exc:
            raise CommandError(str(exc)) from exc
        trusted = trusted_keys()
        if opts["action"] == "export":
            if not opts["out"]:
                raise CommandError("export needs --out FOLDER")
            out = Path(opts["out"])
            out.mkdir(parents=True, exist_ok=True)
            for kid, pub in trusted.items():
                (out / f"{kid}.pub.pem").write_text(public_key_pem(pub))
            self.stdout.write(f"wrote {len(trusted)} public key(s) to {out}")
            return
        self.stdout.write(f"site key file: {settings.AEGIS_SITE_KEY_FILE}")
        self.stdout.write(f"signing key id: {key.keyid}")
        for kid, pub in sorted(trusted.items()):
            mark = "current" if kid == key.keyid else "retired, trusted"
            self.stdout.write(f"trusted {kid} ({mark})")
            if opts["action"] == "show" and kid == key.keyid:
                self.stdout.write(public_key_pem(pub).rstrip())
