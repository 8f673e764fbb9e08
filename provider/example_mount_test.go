package provider_test

import (
	"context"
	"fmt"
	"net"
	"net/http"
	"time"

	"github.com/networkcluster/networkcluster/consumer"
	"github.com/networkcluster/networkcluster/provider"
)

// Mount the Provider on an existing mux, behind a middleware, next to
// other handlers; Consumers connect with a URL.
func ExampleProvider_Handler() {
	p, _ := provider.New(provider.Options{
		OnMessage: func(c *provider.Connection, m provider.Message) {
			_ = c.SendText([]byte("echo: " + m.Text()))
		},
	})
	defer p.Close()

	requireKey := func(next http.Handler) http.Handler {
		return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			if r.URL.Query().Get("key") != "SECRET_KEY" {
				http.Error(w, "no", http.StatusUnauthorized)
				return
			}
			next.ServeHTTP(w, r)
		})
	}
	mux := http.NewServeMux()
	mux.Handle("GET /cluster", requireKey(p.Handler()))
	mux.HandleFunc("GET /healthz", func(w http.ResponseWriter, _ *http.Request) { fmt.Fprint(w, "ok") })
	ln, _ := net.Listen("tcp", "127.0.0.1:0")
	srv := &http.Server{Handler: mux, ReadHeaderTimeout: 5 * time.Second}
	go srv.Serve(ln)
	defer srv.Close()

	got := make(chan string, 1)
	w, _ := consumer.New(consumer.Options{
		URL:       "ws://" + ln.Addr().String() + "/cluster?key=SECRET_KEY",
		OnMessage: func(m consumer.Message) { got <- m.Text() },
	})
	defer w.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	if err := w.Connect(ctx); err != nil {
		fmt.Println(err)
		return
	}
	_ = w.Send("hello")
	fmt.Println(<-got)
	fmt.Println("connections:", p.Len())
	// Output:
	// echo: hello
	// connections: 1
}
