// Command etcd is a minimal etcd server for the side-by-side benchmark: it
// runs go.etcd.io/etcd/server/v3/embed with the few settings the benchmark
// varies (name, data dir, URLs, initial cluster, heartbeat and election
// timeouts, TLS files) and etcd's defaults for everything else. The TLS
// flags are etcd's own: with them the URLs are https://.
package main

import (
	"flag"
	"log"
	"net/url"
	"os"
	"os/signal"
	"strings"
	"syscall"

	"go.etcd.io/etcd/client/pkg/v3/transport"
	"go.etcd.io/etcd/server/v3/embed"
)

func main() {
	cfg := embed.NewConfig()
	name := flag.String("name", "default", "member name")
	dir := flag.String("data-dir", "", "data directory (required)")
	peer := flag.String("listen-peer-urls", "http://127.0.0.1:2380", "URL to listen on for peers (also advertised)")
	clientURL := flag.String("listen-client-urls", "http://127.0.0.1:2379", "URL to listen on for clients (also advertised)")
	initial := flag.String("initial-cluster", "", "name=peerURL,… of every member")
	state := flag.String("initial-cluster-state", "new", "new or existing")
	token := flag.String("initial-cluster-token", "peerbench", "cluster token")
	heartbeat := flag.Uint("heartbeat-interval", cfg.TickMs, "heartbeat interval in ms")
	election := flag.Uint("election-timeout", cfg.ElectionMs, "election timeout in ms")
	logLevel := flag.String("log-level", "warn", "debug, info, warn, error")
	var client, peerTLS transport.TLSInfo
	flag.StringVar(&client.CertFile, "cert-file", "", "client-facing TLS certificate (the client URL must be https://)")
	flag.StringVar(&client.KeyFile, "key-file", "", "its key")
	flag.StringVar(&client.TrustedCAFile, "trusted-ca-file", "", "CA that signs client certificates")
	flag.BoolVar(&client.ClientCertAuth, "client-cert-auth", false, "require a client certificate signed by --trusted-ca-file")
	flag.StringVar(&peerTLS.CertFile, "peer-cert-file", "", "peer TLS certificate (server and client auth; the peer URLs must be https://)")
	flag.StringVar(&peerTLS.KeyFile, "peer-key-file", "", "its key")
	flag.StringVar(&peerTLS.TrustedCAFile, "peer-trusted-ca-file", "", "CA that signs peer certificates")
	flag.BoolVar(&peerTLS.ClientCertAuth, "peer-client-cert-auth", false, "require a peer certificate signed by --peer-trusted-ca-file")
	flag.Parse()
	if *dir == "" || *initial == "" {
		log.Fatal("etcd: --data-dir and --initial-cluster are required")
	}
	pu, err := url.Parse(*peer)
	if err != nil {
		log.Fatalf("etcd: --listen-peer-urls: %v", err)
	}
	cu, err := url.Parse(*clientURL)
	if err != nil {
		log.Fatalf("etcd: --listen-client-urls: %v", err)
	}
	cfg.Name, cfg.Dir = *name, *dir
	cfg.ListenPeerUrls, cfg.AdvertisePeerUrls = []url.URL{*pu}, []url.URL{*pu}
	cfg.ListenClientUrls, cfg.AdvertiseClientUrls = []url.URL{*cu}, []url.URL{*cu}
	cfg.InitialCluster = strings.TrimSpace(*initial)
	cfg.ClusterState = *state
	cfg.InitialClusterToken = *token
	cfg.TickMs, cfg.ElectionMs = *heartbeat, *election
	cfg.ClientTLSInfo, cfg.PeerTLSInfo = client, peerTLS
	// embed leaves this at 0, which logs every request as "expensive";
	// etcd's own command line defaults it to 300 ms.
	cfg.WarningUnaryRequestDuration = embed.DefaultWarningUnaryRequestDuration
	cfg.LogLevel = *logLevel
	cfg.Logger = "zap"
	cfg.LogOutputs = []string{"stderr"}

	e, err := embed.StartEtcd(cfg)
	if err != nil {
		log.Fatalf("etcd: %v", err)
	}
	defer e.Close()
	sig := make(chan os.Signal, 1)
	signal.Notify(sig, syscall.SIGINT, syscall.SIGTERM)
	select {
	case err := <-e.Err():
		log.Fatalf("etcd: %v", err)
	case <-sig:
	}
}
