package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/voicebroker/voicebroker/internal/apikey"
)

// freeAddr returns a loopback address with a port free right now.
func freeAddr(t *testing.T) string {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	return l.Addr().String()
}

func get(t *testing.T, method, url string) (int, string) {
	t.Helper()
	req, _ := http.NewRequest(method, url, nil)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatalf("%s %s: %v", method, url, err)
	}
	defer resp.Body.Close()
	body, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, string(body)
}

// TestMetricsListener runs the real broker with BROKER_METRICS_ADDR (contract
// §3): /metrics, whose series name the orgs, is served on that listener
// only, the public listener answers 404 not_found there, and SIGTERM stops
// both listeners gracefully (exit 0).
func TestMetricsListener(t *testing.T) {
	f := newFixture(t)
	sk, err := apikey.New(apikey.Secret, apikey.Live)
	if err != nil {
		t.Fatal(err)
	}
	// An org id an outsider must not learn from the public port.
	tenants := f.tenantsVariant(t, "metrics", func(string) string {
		return strings.Replace(fmt.Sprintf(goodTenants, apikey.Hash(sk)), "id: acme", "id: org-of-a-customer", 1)
	})
	addr, maddr := freeAddr(t), freeAddr(t)
	var out safeBuffer
	cmd := exec.Command(brokerBinary(t))
	cmd.Dir = t.TempDir()
	cmd.Env = []string{"PATH=" + os.Getenv("PATH"), "BROKER_ADDR=" + addr, "BROKER_METRICS_ADDR=" + maddr,
		"BROKER_CONFIG=" + tenants, "BROKER_SIGNING_KEY_FILE=" + f.signing}
	cmd.Stdout, cmd.Stderr = &out, &out
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	done := make(chan error, 1)
	go func() { done <- cmd.Wait() }()
	t.Cleanup(func() {
		cmd.Process.Kill()
		<-done
	})
	base, mbase := "http://"+addr, "http://"+maddr
	deadline := time.Now().Add(20 * time.Second)
	for {
		resp, err1 := http.Get(base + "/healthz")
		mresp, err2 := http.Get(mbase + "/metrics")
		if err1 == nil {
			resp.Body.Close()
		}
		if err2 == nil {
			mresp.Body.Close()
		}
		if err1 == nil && err2 == nil {
			break
		}
		select {
		case err := <-done:
			t.Fatalf("broker exited: %v\n%s", err, out.String())
		default:
		}
		if time.Now().After(deadline) {
			t.Fatalf("broker not up on both listeners:\n%s", out.String())
		}
		time.Sleep(20 * time.Millisecond)
	}
	// A ticket for the org, so its id is in a series.
	req, _ := http.NewRequest("POST", base+"/token", strings.NewReader(`{"agent":"bot","channel":"webrtc"}`))
	req.Header.Set("Authorization", "Bearer "+sk)
	req.Header.Set("Content-Type", "application/json")
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != 201 {
		t.Fatalf("POST /token: %d", resp.StatusCode)
	}

	code, body := get(t, "GET", mbase+"/metrics")
	if code != 200 || !strings.Contains(body, "voicebroker_build_info{") || !strings.Contains(body, `org="org-of-a-customer"`) {
		t.Fatalf("metrics listener /metrics: %d\n%s", code, body)
	}
	for _, path := range []string{"/metrics", "/metrics/", "/METRICS", "/metrics?x=1", "//metrics"} {
		for _, method := range []string{"GET", "HEAD"} {
			code, body := get(t, method, base+path)
			if code != 404 || strings.Contains(body, "voicebroker_") || strings.Contains(body, "org-of-a-customer") {
				t.Errorf("public listener %s %s: %d %.200s", method, path, code, body)
			}
			if method == "GET" && !strings.Contains(body, `"error":"not_found"`) {
				t.Errorf("public listener GET %s: %q, want not_found in the contract's shape", path, body)
			}
		}
	}
	for _, path := range []string{"/healthz", "/token", "/"} {
		if code, body := get(t, "GET", mbase+path); code != 404 || !strings.Contains(body, `"error":"not_found"`) {
			t.Errorf("metrics listener GET %s: %d %s", path, code, body)
		}
	}

	// Graceful stop: both listeners close and the broker exits 0.
	cmd.Process.Signal(syscall.SIGTERM)
	select {
	case err := <-done:
		done <- err // for the clean-up
		if err != nil {
			t.Fatalf("exit after SIGTERM: %v\n%s", err, out.String())
		}
	case <-time.After(25 * time.Second):
		t.Fatalf("no exit after SIGTERM:\n%s", out.String())
	}
	for _, a := range []string{addr, maddr} {
		ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
		c, err := (&net.Dialer{}).DialContext(ctx, "tcp", a)
		cancel()
		if err == nil {
			c.Close()
			t.Errorf("%s still accepts after exit", a)
		} else if !errors.Is(err, syscall.ECONNREFUSED) {
			t.Logf("dial %s: %v", a, err)
		}
	}
	log := out.String()
	for _, want := range []string{`"event":"metrics"`, `"addr":"` + maddr + `"`, `"event":"shutdown"`} {
		if !strings.Contains(log, want) {
			t.Errorf("log lacks %s:\n%s", want, log)
		}
	}
}

// TestMetricsAddrInUse: a BROKER_METRICS_ADDR that cannot be bound stops
// the start, naming the variable, before the broker serves anything.
func TestMetricsAddrInUse(t *testing.T) {
	f := newFixture(t)
	held := holdPort(t)
	code, out := runBroker(t, brokerBinary(t), map[string]string{"BROKER_ADDR": "127.0.0.1:0", "BROKER_METRICS_ADDR": held,
		"BROKER_CONFIG": f.tenants, "BROKER_SIGNING_KEY_FILE": f.signing}, t.TempDir())
	if code == 0 || !strings.Contains(out, "BROKER_METRICS_ADDR "+held) || !strings.Contains(out, "address already in use") {
		t.Fatalf("exit %d:\n%s", code, out)
	}
	for _, never := range []string{`"event":"start"`, "panic", "goroutine "} {
		if strings.Contains(out, never) {
			t.Errorf("output contains %q:\n%s", never, out)
		}
	}
}
