package main

import (
	"bufio"
	"debug/buildinfo"
	"fmt"
	"log"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
)

// peerModule is this module's path; its go.mod marks the directory the
// binaries are built from.
const peerModule = "github.com/rctl-dev/rctl/bench/peer"

// binaries are the two servers, and what they were built from.
type binaries struct {
	rctl, etcd    string
	rctlVersion   string // git commit of the repository (+dirty)
	raftVersion   string // hashicorp/raft in the rctl binary
	etcdVersion   string // go.etcd.io/etcd/server/v3 in the etcd binary
	peerDir, root string
}

// buildBinaries builds rctl (in the repository root, with the root
// module's dependencies) and etcd (in this module) into dir, unless paths
// to prebuilt binaries are given.
func buildBinaries(dir, rctlBin, etcdBin string) (binaries, error) {
	var b binaries
	peerDir, err := findPeerDir()
	if err != nil {
		return b, err
	}
	b.peerDir, b.root = peerDir, filepath.Clean(filepath.Join(peerDir, "..", ".."))
	b.rctl, b.etcd = rctlBin, etcdBin
	if b.rctl == "" {
		b.rctl = filepath.Join(dir, "rctl")
		if err := goBuild(b.root, b.rctl, "."); err != nil {
			return b, err
		}
	}
	if b.etcd == "" {
		b.etcd = filepath.Join(dir, "etcd")
		if err := goBuild(peerDir, b.etcd, "./cmd/etcd"); err != nil {
			return b, err
		}
	}
	b.raftVersion = depVersion(b.rctl, "github.com/hashicorp/raft")
	b.etcdVersion = depVersion(b.etcd, "go.etcd.io/etcd/server/v3")
	b.rctlVersion = gitVersion(b.root)
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

func gitVersion(root string) string {
	out, err := exec.Command("git", "-C", root, "describe", "--always", "--dirty").Output()
	if err != nil {
		return "?"
	}
	return strings.TrimSpace(string(out))
}
