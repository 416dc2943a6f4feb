#!/usr/bin/env python3
"""The release's artefacts, as scripts/release.sh leaves them in DIR: every file's sha256 is in
SHA256SUMS and matches; the krew manifest's sha256 is the plugin archive's and its URL names that
archive; the archives hold the binaries (which run) and the LICENSE; the image archive is an OCI
layout naming the image, non-root; the chart package is the chart at the crate's version; the CRD
is the generated one; the SBOM is CycloneDX and lists the crates prescaler is built from.

Run: python3 tests/release/check.py target/dist   (scripts/test.sh makes and checks it)
"""
import hashlib
import json
import os
import re
import subprocess
import sys
import tarfile
import tempfile
import unittest

import yaml

ROOT = os.path.abspath(os.path.join(os.path.dirname(__file__), "..", ".."))
DIST = os.path.abspath(sys.argv.pop(1) if len(sys.argv) > 1 else os.path.join(ROOT, "target", "dist"))
with open(os.path.join(ROOT, "Cargo.toml")) as f:
    VERSION = re.search(r'^version = "([^"]+)"', f.read(), re.M).group(1)


def sha256(path):
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


def elf_sections(elf):
    """The section names of a 64-bit little-endian ELF file (what `readelf -S` lists)."""
    import struct
    assert elf[:4] == b"\x7fELF" and elf[4] == 2 and elf[5] == 1, "not a 64-bit LE ELF file"
    shoff, = struct.unpack_from("<Q", elf, 0x28)
    shentsize, shnum, shstrndx = struct.unpack_from("<HHH", elf, 0x3A)
    headers = [struct.unpack_from("<IIQQQQ", elf, shoff + i * shentsize) for i in range(shnum)]
    strtab_offset = headers[shstrndx][4]
    names = []
    for name_offset, *_ in headers:
        start = strtab_offset + name_offset
        names.append(elf[start:elf.index(b"\0", start)].decode())
    return names


def path(name):
    return os.path.join(DIST, name)


class Release(unittest.TestCase):
    def test_every_artefact_is_there_and_in_sha256sums(self):
        expected = {
            f"prescaler_v{VERSION}_linux_amd64.tar.gz",
            f"kubectl-prescaler_v{VERSION}_linux_amd64.tar.gz",
            f"prescaler-image_v{VERSION}_linux_amd64.oci.tar",
            f"prescaler-{VERSION}.tgz",
            f"prescaler-crds_v{VERSION}.yaml",
            f"prescaler_v{VERSION}.cdx.json",
            "prescaler-krew.yaml",
        }
        self.assertEqual(set(os.listdir(DIST)), expected | {"SHA256SUMS"})
        sums = {}
        with open(path("SHA256SUMS")) as f:
            for line in f:
                digest, name = line.split()
                sums[name] = digest
        self.assertEqual(set(sums), expected)
        for name, digest in sums.items():
            self.assertEqual(sha256(path(name)), digest, name)

    def test_the_krew_manifest_has_the_plugin_archives_real_checksum(self):
        with open(path("prescaler-krew.yaml")) as f:
            text = f.read()
        manifest = yaml.safe_load(text)
        self.assertEqual(manifest["apiVersion"], "krew.googlecontainertools.github.com/v1alpha2")
        self.assertEqual(manifest["kind"], "Plugin")
        self.assertEqual(manifest["metadata"]["name"], "prescaler")
        self.assertEqual(manifest["spec"]["version"], f"v{VERSION}")
        self.assertNotIn("0" * 64, text, "a placeholder checksum")
        (platform,) = manifest["spec"]["platforms"]
        self.assertEqual(platform["selector"]["matchLabels"], {"os": "linux", "arch": "amd64"})
        archive = platform["uri"].rsplit("/", 1)[1]
        self.assertEqual(archive, f"kubectl-prescaler_v{VERSION}_linux_amd64.tar.gz")
        self.assertEqual(platform["sha256"], sha256(path(archive)))
        self.assertEqual(platform["bin"], "kubectl-prescaler")
        with tarfile.open(path(archive)) as t:
            names = set(t.getnames())
        for entry in platform["files"]:
            self.assertIn(entry["from"], names)

    def test_the_archives_hold_binaries_that_run_and_the_license(self):
        for binary, extra in (("prescaler", {"README.md"}), ("kubectl-prescaler", set())):
            archive = path(f"{binary}_v{VERSION}_linux_amd64.tar.gz")
            with tarfile.open(archive) as t, tempfile.TemporaryDirectory() as tmp:
                self.assertEqual(set(t.getnames()), {binary, "LICENSE"} | extra)
                for member in t.getmembers():
                    self.assertEqual((member.uid, member.gid), (0, 0), member.name)
                t.extractall(tmp, filter="data")
                with open(os.path.join(tmp, "LICENSE")) as f:
                    self.assertIn("Apache License", f.read())
                out = subprocess.run([os.path.join(tmp, binary), "--version"],
                                     capture_output=True, text=True, check=True).stdout
                self.assertIn(VERSION, out)
                # Stripped: no symbol table, no debug info.
                with open(os.path.join(tmp, binary), "rb") as f:
                    elf = f.read()
                sections = elf_sections(elf)
                self.assertIn(".text", sections)
                self.assertNotIn(".symtab", sections, f"{binary} is not stripped")
                debug = [s for s in sections if s.startswith(".debug")]
                self.assertEqual(debug, [], f"{binary} carries debug info")
                self.assertLess(len(elf), 40 << 20, f"{binary} is {len(elf)} bytes")

    def test_the_image_archive_is_an_oci_layout_naming_the_image(self):
        with tarfile.open(path(f"prescaler-image_v{VERSION}_linux_amd64.oci.tar")) as t:
            index = json.load(t.extractfile("index.json"))
            (manifest_ref,) = index["manifests"]
            self.assertTrue(manifest_ref["annotations"]["org.opencontainers.image.ref.name"]
                            .endswith(f":{VERSION}"), manifest_ref)

            def blob(digest):
                return t.extractfile("blobs/" + digest.replace(":", "/"))

            manifest = json.load(blob(manifest_ref["digest"]))
            config = json.load(blob(manifest["config"]["digest"]))
            self.assertEqual(config["config"]["User"], "65532:65532")
            self.assertEqual(config["config"]["Entrypoint"], ["/usr/local/bin/prescaler"])
            self.assertEqual(config["os"], "linux")
            self.assertEqual(config["architecture"], "amd64")
            size = sum(layer["size"] for layer in manifest["layers"])
            self.assertLess(size, 40 << 20, f"compressed layers: {size} bytes")

    def test_the_chart_package_and_the_crd(self):
        with tarfile.open(path(f"prescaler-{VERSION}.tgz")) as t:
            chart = yaml.safe_load(t.extractfile("prescaler/Chart.yaml"))
            packaged_crd = t.extractfile("prescaler/crds/predictivescaler.yaml").read()
        self.assertEqual((chart["version"], chart["appVersion"]), (VERSION, VERSION))
        with open(os.path.join(ROOT, "crds", "predictivescaler.yaml"), "rb") as f:
            crd = f.read()
        with open(path(f"prescaler-crds_v{VERSION}.yaml"), "rb") as f:
            self.assertEqual(f.read(), crd)
        self.assertEqual(packaged_crd, crd)

    def test_the_sbom_lists_what_prescaler_is_built_from(self):
        with open(path(f"prescaler_v{VERSION}.cdx.json")) as f:
            bom = json.load(f)
        self.assertEqual(bom["bomFormat"], "CycloneDX")
        self.assertEqual(bom["metadata"]["component"]["name"], "prescaler")
        self.assertEqual(bom["metadata"]["component"]["version"], VERSION)
        names = {c["name"] for c in bom.get("components", [])}
        for crate in ("kube", "tokio", "serde", "rustls", "chrono-tz", "croner"):
            self.assertIn(crate, names)
        # The benchmarks' package (bench/, with augurs) is not what prescaler is built from.
        for crate in ("prescaler-bench", "augurs", "nalgebra"):
            self.assertNotIn(crate, names)
        with open(os.path.join(ROOT, "Cargo.lock")) as f:
            locked = dict(re.findall(r'name = "([^"]+)"\nversion = "([^"]+)"', f.read()))
        for c in bom["components"]:
            if c["name"] in locked and c.get("version") == locked[c["name"]]:
                continue
            # A crate at two versions: the lock file's regex above keeps one of them.
            self.assertIn(c["name"], locked, c["name"])


if __name__ == "__main__":
    unittest.main(verbosity=2)
