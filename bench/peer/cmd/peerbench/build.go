package main

import (
	"bufio"
	"context"
	"debug/buildinfo"
	"fmt"
	"log"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"time"
)

// peerModule is this module's path; its go.mod marks the directory the
// binaries are built from.
const peerModule = "github.com/rctl-dev/rctl/bench/peer"

// binaries are the servers of the systems run, and what they were built
// from.
type binaries struct {
	rctl        rctlBuild // system rctl
	rctlBase    rctlBuild // system rctl-base (--rctl-base-bin)
	etcd        string
	etcdVersion string // go.etcd.io/etcd/server/v3 in the etcd binary
	peerDir     string
	root        string
}

// rctlBuild is one rctl binary and what it was built from.
type rctlBuild struct {
	bin     string
	version string // rctl: git commit of the repository (+dirty); rctl-base: binVersion
	raft    string // hashicorp/raft in the binary
}

const raftModule = "github.com/hashicorp/raft"

// rctlOf returns the build of an rctl system (rctl or rctl-base).
func (b binaries) rctlOf(name string) rctlBuild {
	if name == sysRCTLBase {
		return b.rctlBase
	}
	return b.rctl
}

// buildBinaries builds, for the systems of cfg, rctl (in the repository
// root, with the root module's dependencies) and etcd (in this module)
// into cfg.work, unless paths to prebuilt binaries are given; rctl-base is
// always prebuilt (--rctl-base-bin).
func buildBinaries(cfg runConfig) (binaries, error) {
	var b binaries
	peerDir, err := findPeerDir()
	if err != nil {
		return b, err
	}
	b.peerDir, b.root = peerDir, filepath.Clean(filepath.Join(peerDir, "..", ".."))
	if slices.Contains(cfg.systems, sysRCTL) {
		bin := cfg.rctlBin
		if bin == "" {
			bin = filepath.Join(cfg.work, "rctl")
			if err := goBuild(b.root, bin, "."); err != nil {
				return b, err
			}
		}
		b.rctl = rctlBuild{bin: bin, version: gitVersion(b.root), raft: depVersion(bin, raftModule)}
	}
	if slices.Contains(cfg.systems, sysRCTLBase) {
		// Absolute: on wan the servers start through `ip netns exec`,
		// which would look a bare name up in PATH.
		bin, err := filepath.Abs(cfg.rctlBaseBin)
		if err != nil {
			return b, err
		}
		if _, err := os.Stat(bin); err != nil {
			return b, fmt.Errorf("--rctl-base-bin: %w", err)
		}
		b.rctlBase = rctlBuild{bin: bin, version: binVersion(bin), raft: depVersion(bin, raftModule)}
	}
	if slices.Contains(cfg.systems, sysEtcd) {
		b.etcd = cfg.etcdBin
		if b.etcd == "" {
			b.etcd = filepath.Join(cfg.work, "etcd")
			if err := goBuild(peerDir, b.etcd, "./cmd/etcd"); err != nil {
				return b, err
			}
		}
		b.etcdVersion = depVersion(b.etcd, "go.etcd.io/etcd/server/v3")
	}
	return b, nil
}

func goBuild(dir, out, pkg string) error {
	log.Printf("building %s (go build -o %s %s in %s)", filepath.Base(out), out, pkg, dir)
	cmd := exec.Command("go", "build", "-o", out, pkg)
	cmd.Dir = dir
	if o, err := cmd.CombinedOutput(); err != nil {
		return fmt.Errorf("go build %s in %s: %v\n%s", pkg, dir, err, o)
	}
	return nil
}

// findPeerDir walks up from the working directory to this module's root.
func findPeerDir() (string, error) {
	wd, err := os.Getwd()
	if err != nil {
		return "", err
	}
	for d := wd; ; d = filepath.Dir(d) {
		if modulePath(filepath.Join(d, "go.mod")) == peerModule {
			return d, nil
		}
		if next := filepath.Join(d, "bench", "peer"); modulePath(filepath.Join(next, "go.mod")) == peerModule {
			return next, nil
		}
		if filepath.Dir(d) == d {
			return "", fmt.Errorf("cannot find module %s above %s: run from the repository or bench/peer", peerModule, wd)
		}
	}
}

func modulePath(gomod string) string {
	f, err := os.Open(gomod)
	if err != nil {
		return ""
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		if rest, ok := strings.CutPrefix(strings.TrimSpace(sc.Text()), "module "); ok {
			return strings.TrimSpace(rest)
		}
	}
	return ""
}

// depVersion reads a dependency's version from a Go binary's build info.
func depVersion(bin, mod string) string {
	info, err := buildinfo.ReadFile(bin)
	if err != nil {
		return "?"
	}
	for _, d := range info.Deps {
		if d.Path == mod {
			if d.Replace != nil {
				return d.Replace.Version
			}
			return d.Version
		}
	}
	return "?"
}

// binVersion is the version of a prebuilt rctl binary, which the
// repository's git commit (gitVersion) does not describe: what `rctl
// version` prints when it was stamped in (-X cli.Version, as goreleaser
// and make bench-compare-peer do), else the commit go build recorded (a
// build in a checkout), else what it prints ("dev" for a plain go build of
// a git archive), else "?".
func binVersion(bin string) string {
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	said := ""
	if out, err := exec.CommandContext(ctx, bin, "version").Output(); err == nil {
		if f := strings.Fields(string(out)); len(f) == 2 && f[0] == "rctl" {
			said = f[1]
		}
	}
	if said != "" && said != "dev" {
		return said
	}
	if v := vcsVersion(bin); v != "" {
		return v
	}
	if said != "" {
		return said
	}
	return "?"
}

// vcsVersion is the commit (+ "-dirty") a Go binary's build info records,
// as git describe --always --dirty prints it; "" if none.
func vcsVersion(bin string) string {
	info, err := buildinfo.ReadFile(bin)
	if err != nil {
		return ""
	}
	var rev, dirty string
	for _, s := range info.Settings {
		switch {
		case s.Key == "vcs.revision":
			rev = s.Value
		case s.Key == "vcs.modified" && s.Value == "true":
			dirty = "-dirty"
		}
	}
	if rev == "" {
		return ""
	}
	return rev[:min(7, len(rev))] + dirty
}

func gitVersion(root string) string {
	out, err := exec.Command("git", "-C", root, "describe", "--always", "--dirty").Output()
	if err != nil {
		return "?"
	}
	return strings.TrimSpace(string(out))
}
