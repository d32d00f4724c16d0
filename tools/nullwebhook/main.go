// nullwebhook: an admission webhook that allows everything and does nothing else, in Go, for
// tools/bench_webhook.py. It measures the floor of the apiserver's webhook mechanism on this machine:
// what any mutating + validating pair costs per create, however fast its handlers are.
package main

import (
	"encoding/json"
	"flag"
	"io"
	"log"
	"net/http"
)

type review struct {
	Request struct {
		UID string `json:"uid"`
	} `json:"request"`
}

func allow(w http.ResponseWriter, r *http.Request) {
	body, err := io.ReadAll(r.Body)
	var in review
	if err == nil {
		err = json.Unmarshal(body, &in)
	}
	if err != nil {
		http.Error(w, err.Error(), http.StatusBadRequest)
		return
	}
	out, _ := json.Marshal(map[string]any{
		"apiVersion": "admission.k8s.io/v1",
		"kind":       "AdmissionReview",
		"response":   map[string]any{"uid": in.Request.UID, "allowed": true},
	})
	w.Header().Set("Content-Type", "application/json")
	_, _ = w.Write(out)
}

func main() {
	addr := flag.String("addr", "127.0.0.1:0", "listen address")
	cert := flag.String("cert", "", "TLS certificate (PEM)")
	key := flag.String("key", "", "TLS key (PEM)")
	flag.Parse()
	http.HandleFunc("/", allow)
	log.Fatal(http.ListenAndServeTLS(*addr, *cert, *key, nil))
}
