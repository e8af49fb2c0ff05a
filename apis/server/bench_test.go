package server_test

import (
	"context"
	"fmt"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync/atomic"
	"testing"

	"github.com/left4me/left4me/apis/server/servertest"
)

// BenchmarkCreateHandler is the server's own cost of one create (decode,
// default, validate, store, encode), without the network.
func BenchmarkCreateHandler(b *testing.B) {
	s, _ := servertest.Start(b)
	token := servertest.AdminToken(b, s)
	var n atomic.Int64
	b.ReportAllocs()
	b.RunParallel(func(pb *testing.PB) {
		for pb.Next() {
			body := fmt.Sprintf(`{"apiVersion":"left4me.io/v1alpha1","kind":"Instance","metadata":{"name":"b%d","labels":{"fleet":"bench"}},"spec":{"blueprintRef":{"name":"coop"},"hostname":"bench","nodeName":"node-1"}}`, n.Add(1))
			req := httptest.NewRequest(http.MethodPost, base+"/namespaces/default/instances", strings.NewReader(body)).WithContext(context.Background())
			req.Header.Set("Content-Type", "application/json")
			req.Header.Set("Authorization", "Bearer "+token)
			rec := httptest.NewRecorder()
			s.Handler.ServeHTTP(rec, req)
			if rec.Code != http.StatusCreated {
				b.Fatalf("create: %d %s", rec.Code, rec.Body)
			}
		}
	})
}
