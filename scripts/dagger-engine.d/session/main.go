// Command kvsession answers `dagger session` the way the SDKs expect: it
// connects to the engine named by _EXPERIMENTAL_DAGGER_RUNNER_HOST, serves the
// session API on a loopback port and prints {"port":N,"session_token":"..."}.
// It exists because the full CLI cannot be built from the module proxy here.
package main

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"time"

	"github.com/google/uuid"

	"github.com/dagger/dagger/engine/client"
)

func main() {
	if len(os.Args) < 2 || os.Args[1] != "session" {
		fmt.Fprintln(os.Stderr, "usage: dagger session [flags]")
		os.Exit(2)
	}
	if err := run(); err != nil {
		fmt.Fprintln(os.Stderr, "Error:", err)
		os.Exit(1)
	}
}

func run() error {
	ctx := context.Background()
	runner := os.Getenv("_EXPERIMENTAL_DAGGER_RUNNER_HOST")
	if runner == "" {
		return errors.New("_EXPERIMENTAL_DAGGER_RUNNER_HOST is not set")
	}
	token := uuid.NewString()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return err
	}
	go func() {
		_, _ = io.Copy(io.Discard, os.Stdin)
		l.Close()
	}()
	sess, err := client.Connect(ctx, client.Params{SecretToken: token, RunnerHost: runner})
	if err != nil {
		return err
	}
	defer sess.Close()
	out, err := json.Marshal(map[string]any{"port": l.Addr().(*net.TCPAddr).Port, "session_token": token})
	if err != nil {
		return err
	}
	if _, err := os.Stdout.Write(append(out, '\n')); err != nil {
		return err
	}
	srv := http.Server{Handler: sess, ReadHeaderTimeout: 30 * time.Second}
	if err := srv.Serve(l); err != nil && !errors.Is(err, net.ErrClosed) {
		return err
	}
	return nil
}
