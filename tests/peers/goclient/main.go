// Command goclient runs named checks of etcd's official Go client (clientv3 and its
// concurrency package) against the endpoints it is given and prints one JSON line per check:
//
//	{"check":"kv.put_get","ok":true,"ms":3}
//	{"check":"watch.progress","ok":false,"ms":5012,"error":"no progress notification"}
//
// The peers test group (tests/peers/test_goclient.py) runs it against a cluster of kvstore
// and a cluster of etcd and reports every check that passes on etcd but fails on kvstore.
// A check never depends on another: each works under its own key prefix and cleans nothing
// up, so run it against a fresh cluster. Exit status is 0 when every check ran, whatever
// their outcomes (the comparison is the caller's job), 2 on bad flags or no connection.
package main

import (
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"sort"
	"strings"
	"sync"
	"time"

	"go.etcd.io/etcd/api/v3/mvccpb"
	"go.etcd.io/etcd/api/v3/v3rpc/rpctypes"
	clientv3 "go.etcd.io/etcd/client/v3"
	"go.etcd.io/etcd/client/v3/concurrency"
	"go.uber.org/zap"
	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials/insecure"
	healthpb "google.golang.org/grpc/health/grpc_health_v1"
)

// env is what every check gets: a client of every endpoint, the endpoints themselves and a
// key prefix of its own.
type env struct {
	cli       *clientv3.Client
	endpoints []string
	prefix    string
}

func (e *env) key(name string) string { return e.prefix + name }

type check struct {
	name string
	run  func(ctx context.Context, e *env) error
}

type result struct {
	Check string `json:"check"`
	OK    bool   `json:"ok"`
	MS    int64  `json:"ms"`
	Error string `json:"error,omitempty"`
}

func fail(format string, args ...any) error { return fmt.Errorf(format, args...) }

// wantErr checks that err is the etcd error want, as clientv3 recognises it: the client
// maps a gRPC status to its typed error by the exact message, so a server that words an
// error differently fails here.
func wantErr(err, want error) error {
	if err == nil {
		return fail("no error, want %q", want)
	}
	if !errors.Is(err, want) && rpctypes.Error(err) != want {
		return fail("error %q, want %q", err, want)
	}
	return nil
}

func values(kvs []*mvccpb.KeyValue) string {
	parts := make([]string, 0, len(kvs))
	for _, kv := range kvs {
		parts = append(parts, string(kv.Key)+"="+string(kv.Value))
	}
	return strings.Join(parts, ",")
}

func keys(kvs []*mvccpb.KeyValue, prefix string) string {
	parts := make([]string, 0, len(kvs))
	for _, kv := range kvs {
		parts = append(parts, strings.TrimPrefix(string(kv.Key), prefix))
	}
	return strings.Join(parts, ",")
}

// putAll writes name=value pairs under the check's prefix and returns the last revision.
func putAll(ctx context.Context, e *env, pairs ...string) (int64, error) {
	var rev int64
	for i := 0; i+1 < len(pairs); i += 2 {
		resp, err := e.cli.Put(ctx, e.key(pairs[i]), pairs[i+1])
		if err != nil {
			return 0, err
		}
		rev = resp.Header.Revision
	}
	return rev, nil
}

// ---- KV ------------------------------------------------------------------------------

func kvPutGet(ctx context.Context, e *env) error {
	put, err := e.cli.Put(ctx, e.key("a"), "1")
	if err != nil {
		return err
	}
	if put.Header.Revision == 0 || put.Header.ClusterId == 0 || put.Header.MemberId == 0 {
		return fail("incomplete header %v", put.Header)
	}
	if _, err = e.cli.Put(ctx, e.key("a"), "2"); err != nil {
		return err
	}
	get, err := e.cli.Get(ctx, e.key("a"))
	if err != nil {
		return err
	}
	if len(get.Kvs) != 1 || string(get.Kvs[0].Value) != "2" {
		return fail("got %q", values(get.Kvs))
	}
	kv := get.Kvs[0]
	if kv.Version != 2 || kv.CreateRevision != put.Header.Revision || kv.ModRevision != get.Header.Revision {
		return fail("version %d create %d mod %d (put at %d, read at %d)",
			kv.Version, kv.CreateRevision, kv.ModRevision, put.Header.Revision, get.Header.Revision)
	}
	missing, err := e.cli.Get(ctx, e.key("missing"))
	if err != nil {
		return err
	}
	if len(missing.Kvs) != 0 || missing.Count != 0 {
		return fail("missing key found: %v", missing.Kvs)
	}
	return nil
}

func kvPutPrevKV(ctx context.Context, e *env) error {
	first, err := e.cli.Put(ctx, e.key("k"), "old", clientv3.WithPrevKV())
	if err != nil {
		return err
	}
	if first.PrevKv != nil {
		return fail("prev_kv on a new key: %v", first.PrevKv)
	}
	second, err := e.cli.Put(ctx, e.key("k"), "new", clientv3.WithPrevKV())
	if err != nil {
		return err
	}
	if second.PrevKv == nil || string(second.PrevKv.Value) != "old" || second.PrevKv.Version != 1 {
		return fail("prev_kv %v", second.PrevKv)
	}
	return nil
}

func kvPutIgnoreValue(ctx context.Context, e *env) error {
	err := wantErr(func() error {
		_, err := e.cli.Put(ctx, e.key("absent"), "", clientv3.WithIgnoreValue())
		return err
	}(), rpctypes.ErrKeyNotFound)
	if err != nil {
		return err
	}
	if _, err = e.cli.Put(ctx, e.key("k"), "kept"); err != nil {
		return err
	}
	if _, err = e.cli.Put(ctx, e.key("k"), "", clientv3.WithIgnoreValue()); err != nil {
		return err
	}
	get, err := e.cli.Get(ctx, e.key("k"))
	if err != nil {
		return err
	}
	if string(get.Kvs[0].Value) != "kept" || get.Kvs[0].Version != 2 {
		return fail("after ignore_value: %q version %d", get.Kvs[0].Value, get.Kvs[0].Version)
	}
	return nil
}

func kvPutIgnoreLease(ctx context.Context, e *env) error {
	lease, err := e.cli.Grant(ctx, 60)
	if err != nil {
		return err
	}
	if _, err = e.cli.Put(ctx, e.key("k"), "v1", clientv3.WithLease(lease.ID)); err != nil {
		return err
	}
	if _, err = e.cli.Put(ctx, e.key("k"), "v2", clientv3.WithIgnoreLease()); err != nil {
		return err
	}
	get, err := e.cli.Get(ctx, e.key("k"))
	if err != nil {
		return err
	}
	if string(get.Kvs[0].Value) != "v2" || get.Kvs[0].Lease != int64(lease.ID) {
		return fail("value %q lease %x, want v2 on lease %x", get.Kvs[0].Value, get.Kvs[0].Lease, lease.ID)
	}
	err = wantErr(func() error {
		_, err := e.cli.Put(ctx, e.key("nolease"), "", clientv3.WithIgnoreLease())
		return err
	}(), rpctypes.ErrKeyNotFound)
	return err
}

func kvGetSortLimit(ctx context.Context, e *env) error {
	if _, err := putAll(ctx, e, "c", "3", "a", "1", "b", "2", "a", "1again"); err != nil {
		return err
	}
	desc, err := e.cli.Get(ctx, e.key(""), clientv3.WithPrefix(),
		clientv3.WithSort(clientv3.SortByKey, clientv3.SortDescend))
	if err != nil {
		return err
	}
	if got := keys(desc.Kvs, e.prefix); got != "c,b,a" {
		return fail("by key descending: %s", got)
	}
	byMod, err := e.cli.Get(ctx, e.key(""), clientv3.WithPrefix(), clientv3.WithLimit(2),
		clientv3.WithSort(clientv3.SortByModRevision, clientv3.SortDescend))
	if err != nil {
		return err
	}
	if got := keys(byMod.Kvs, e.prefix); got != "a,b" || !byMod.More || byMod.Count != 3 {
		return fail("by mod descending, limit 2: %s more=%v count=%d", got, byMod.More, byMod.Count)
	}
	byValue, err := e.cli.Get(ctx, e.key(""), clientv3.WithPrefix(),
		clientv3.WithSort(clientv3.SortByValue, clientv3.SortAscend))
	if err != nil {
		return err
	}
	if got := keys(byValue.Kvs, e.prefix); got != "a,b,c" {
		return fail("by value: %s", got)
	}
	byVersion, err := e.cli.Get(ctx, e.key(""), clientv3.WithPrefix(),
		clientv3.WithSort(clientv3.SortByVersion, clientv3.SortDescend))
	if err != nil {
		return err
	}
	if got := keys(byVersion.Kvs, e.prefix); !strings.HasPrefix(got, "a,") {
		return fail("by version descending: %s", got)
	}
	return nil
}

func kvGetCountKeysOnly(ctx context.Context, e *env) error {
	if _, err := putAll(ctx, e, "x1", "v", "x2", "v", "x3", "v"); err != nil {
		return err
	}
	count, err := e.cli.Get(ctx, e.key("x"), clientv3.WithPrefix(), clientv3.WithCountOnly())
	if err != nil {
		return err
	}
	if count.Count != 3 || len(count.Kvs) != 0 {
		return fail("count_only: count %d, %d kvs", count.Count, len(count.Kvs))
	}
	ko, err := e.cli.Get(ctx, e.key("x"), clientv3.WithPrefix(), clientv3.WithKeysOnly())
	if err != nil {
		return err
	}
	if len(ko.Kvs) != 3 || len(ko.Kvs[0].Value) != 0 || ko.Kvs[0].Version != 1 {
		return fail("keys_only: %v", ko.Kvs)
	}
	return nil
}

func kvGetRanges(ctx context.Context, e *env) error {
	if _, err := putAll(ctx, e, "a", "1", "b", "2", "c", "3", "d", "4"); err != nil {
		return err
	}
	ranged, err := e.cli.Get(ctx, e.key("b"), clientv3.WithRange(e.key("d")))
	if err != nil {
		return err
	}
	if got := keys(ranged.Kvs, e.prefix); got != "b,c" {
		return fail("[b, d): %s", got)
	}
	from, err := e.cli.Get(ctx, e.key("c"), clientv3.WithFromKey())
	if err != nil {
		return err
	}
	if len(from.Kvs) < 2 || keys(from.Kvs[:2], e.prefix) != "c,d" {
		return fail("from c: %s", keys(from.Kvs, e.prefix))
	}
	return nil
}

func kvGetAtRevision(ctx context.Context, e *env) error {
	old, err := e.cli.Put(ctx, e.key("k"), "old")
	if err != nil {
		return err
	}
	if _, err = e.cli.Put(ctx, e.key("k"), "new"); err != nil {
		return err
	}
	get, err := e.cli.Get(ctx, e.key("k"), clientv3.WithRev(old.Header.Revision))
	if err != nil {
		return err
	}
	if len(get.Kvs) != 1 || string(get.Kvs[0].Value) != "old" {
		return fail("at revision %d: %q", old.Header.Revision, values(get.Kvs))
	}
	return wantErr(func() error {
		_, err := e.cli.Get(ctx, e.key("k"), clientv3.WithRev(get.Header.Revision+1000))
		return err
	}(), rpctypes.ErrFutureRev)
}

func kvGetRevisionFilters(ctx context.Context, e *env) error {
	first, err := putAll(ctx, e, "a", "1", "b", "2")
	if err != nil {
		return err
	}
	if _, err = putAll(ctx, e, "c", "3", "a", "again"); err != nil {
		return err
	}
	minMod, err := e.cli.Get(ctx, e.key(""), clientv3.WithPrefix(), clientv3.WithMinModRev(first+1))
	if err != nil {
		return err
	}
	if got := keys(minMod.Kvs, e.prefix); got != "a,c" {
		return fail("min_mod_revision %d: %s", first+1, got)
	}
	maxCreate, err := e.cli.Get(ctx, e.key(""), clientv3.WithPrefix(), clientv3.WithMaxCreateRev(first))
	if err != nil {
		return err
	}
	if got := keys(maxCreate.Kvs, e.prefix); got != "a,b" {
		return fail("max_create_revision %d: %s", first, got)
	}
	minCreate, err := e.cli.Get(ctx, e.key(""), clientv3.WithPrefix(), clientv3.WithMinCreateRev(first+1))
	if err != nil {
		return err
	}
	if got := keys(minCreate.Kvs, e.prefix); got != "c" {
		return fail("min_create_revision %d: %s", first+1, got)
	}
	maxMod, err := e.cli.Get(ctx, e.key(""), clientv3.WithPrefix(), clientv3.WithMaxModRev(first))
	if err != nil {
		return err
	}
	if got := keys(maxMod.Kvs, e.prefix); got != "b" {
		return fail("max_mod_revision %d: %s", first, got)
	}
	return nil
}

func kvGetSerializable(ctx context.Context, e *env) error {
	put, err := e.cli.Put(ctx, e.key("k"), "v")
	if err != nil {
		return err
	}
	// A serializable read may be served by a member that has not applied the put yet;
	// retry briefly on each member until it shows up.
	for _, ep := range e.endpoints {
		one, err := newClient([]string{ep})
		if err != nil {
			return err
		}
		deadline := time.Now().Add(3 * time.Second)
		for {
			get, err := one.Get(ctx, e.key("k"), clientv3.WithSerializable())
			if err != nil {
				one.Close()
				return err
			}
			if get.Header.Revision >= put.Header.Revision && len(get.Kvs) == 1 {
				break
			}
			if time.Now().After(deadline) {
				one.Close()
				return fail("%s never served revision %d serializably", ep, put.Header.Revision)
			}
			time.Sleep(20 * time.Millisecond)
		}
		one.Close()
	}
	return nil
}

func kvDeletePrefix(ctx context.Context, e *env) error {
	if _, err := putAll(ctx, e, "d/1", "a", "d/2", "b", "e", "c"); err != nil {
		return err
	}
	del, err := e.cli.Delete(ctx, e.key("d/"), clientv3.WithPrefix(), clientv3.WithPrevKV())
	if err != nil {
		return err
	}
	if del.Deleted != 2 || values(del.PrevKvs) != e.key("d/1")+"=a,"+e.key("d/2")+"=b" {
		return fail("deleted %d, prev %s", del.Deleted, values(del.PrevKvs))
	}
	none, err := e.cli.Delete(ctx, e.key("d/"), clientv3.WithPrefix())
	if err != nil {
		return err
	}
	if none.Deleted != 0 {
		return fail("second delete removed %d", none.Deleted)
	}
	rest, err := e.cli.Get(ctx, e.key(""), clientv3.WithPrefix(), clientv3.WithCountOnly())
	if err != nil {
		return err
	}
	if rest.Count != 1 {
		return fail("%d keys left, want 1", rest.Count)
	}
	return nil
}

func kvErrors(ctx context.Context, e *env) error {
	if err := wantErr(func() error { _, err := e.cli.Put(ctx, "", "v"); return err }(),
		rpctypes.ErrEmptyKey); err != nil {
		return err
	}
	if err := wantErr(func() error { _, err := e.cli.Get(ctx, ""); return err }(),
		rpctypes.ErrEmptyKey); err != nil {
		return err
	}
	// Over the server's 1.5 MiB request limit, under the client's 2 MiB send limit.
	big := strings.Repeat("x", 1700*1024)
	return wantErr(func() error { _, err := e.cli.Put(ctx, e.key("big"), big); return err }(),
		rpctypes.ErrRequestTooLarge)
}

// ---- Txn -----------------------------------------------------------------------------

func txnCompares(ctx context.Context, e *env) error {
	put, err := e.cli.Put(ctx, e.key("k"), "ready")
	if err != nil {
		return err
	}
	k := e.key("k")
	ok, err := e.cli.Txn(ctx).If(
		clientv3.Compare(clientv3.Value(k), "=", "ready"),
		clientv3.Compare(clientv3.Version(k), "=", 1),
		clientv3.Compare(clientv3.CreateRevision(k), "=", put.Header.Revision),
		clientv3.Compare(clientv3.ModRevision(k), "<", put.Header.Revision+1),
		clientv3.Compare(clientv3.Version(e.key("absent")), "=", 0),
	).Then(
		clientv3.OpPut(k, "done"),
		clientv3.OpGet(k),
	).Else(clientv3.OpPut(k, "failed")).Commit()
	if err != nil {
		return err
	}
	if !ok.Succeeded || len(ok.Responses) != 2 {
		return fail("success branch: succeeded=%v %d responses", ok.Succeeded, len(ok.Responses))
	}
	if got := ok.Responses[1].GetResponseRange().Kvs; len(got) != 1 || string(got[0].Value) != "done" {
		return fail("get inside txn saw %q", values(got))
	}
	failed, err := e.cli.Txn(ctx).If(clientv3.Compare(clientv3.Value(k), "=", "ready")).
		Then(clientv3.OpPut(k, "again")).Else(clientv3.OpDelete(k, clientv3.WithPrevKV())).Commit()
	if err != nil {
		return err
	}
	del := failed.Responses[0].GetResponseDeleteRange()
	if failed.Succeeded || del == nil || del.Deleted != 1 || string(del.PrevKvs[0].Value) != "done" {
		return fail("failure branch: %v", failed)
	}
	return nil
}

func txnNested(ctx context.Context, e *env) error {
	if _, err := putAll(ctx, e, "a", "1"); err != nil {
		return err
	}
	inner := clientv3.OpTxn(
		[]clientv3.Cmp{clientv3.Compare(clientv3.Value(e.key("a")), "=", "1")},
		[]clientv3.Op{clientv3.OpPut(e.key("b"), "from-inner")},
		nil,
	)
	resp, err := e.cli.Txn(ctx).If(clientv3.Compare(clientv3.Version(e.key("a")), ">", 0)).
		Then(inner).Commit()
	if err != nil {
		return err
	}
	nested := resp.Responses[0].GetResponseTxn()
	if !resp.Succeeded || nested == nil || !nested.Succeeded {
		return fail("nested txn: %v", resp)
	}
	get, err := e.cli.Get(ctx, e.key("b"))
	if err != nil {
		return err
	}
	if values(get.Kvs) != e.key("b")+"=from-inner" {
		return fail("b is %q", values(get.Kvs))
	}
	return nil
}

func txnErrors(ctx context.Context, e *env) error {
	err := wantErr(func() error {
		_, err := e.cli.Txn(ctx).Then(clientv3.OpPut(e.key("k"), "1"), clientv3.OpPut(e.key("k"), "2")).Commit()
		return err
	}(), rpctypes.ErrDuplicateKey)
	if err != nil {
		return err
	}
	ops := make([]clientv3.Op, 0, 129)
	for i := 0; i < 129; i++ {
		ops = append(ops, clientv3.OpPut(e.key(fmt.Sprintf("op%03d", i)), "v"))
	}
	return wantErr(func() error { _, err := e.cli.Txn(ctx).Then(ops...).Commit(); return err }(),
		rpctypes.ErrTooManyOps)
}

func kvOptionErrors(ctx context.Context, e *env) error {
	if _, err := e.cli.Put(ctx, e.key("k"), "v"); err != nil {
		return err
	}
	if err := wantErr(func() error {
		_, err := e.cli.Put(ctx, e.key("k"), "new", clientv3.WithIgnoreValue())
		return err
	}(), rpctypes.ErrValueProvided); err != nil {
		return err
	}
	lease, err := e.cli.Grant(ctx, 60)
	if err != nil {
		return err
	}
	return wantErr(func() error {
		_, err := e.cli.Put(ctx, e.key("k"), "v", clientv3.WithIgnoreLease(), clientv3.WithLease(lease.ID))
		return err
	}(), rpctypes.ErrLeaseProvided)
}

func txnLeaseCompare(ctx context.Context, e *env) error {
	lease, err := e.cli.Grant(ctx, 60)
	if err != nil {
		return err
	}
	if _, err = e.cli.Put(ctx, e.key("leased"), "v", clientv3.WithLease(lease.ID)); err != nil {
		return err
	}
	if _, err = e.cli.Put(ctx, e.key("plain"), "v"); err != nil {
		return err
	}
	resp, err := e.cli.Txn(ctx).If(
		clientv3.Compare(clientv3.LeaseValue(e.key("leased")), "=", lease.ID),
		clientv3.Compare(clientv3.LeaseValue(e.key("plain")), "=", clientv3.NoLease),
	).Then(clientv3.OpGet(e.key("plain"))).Commit() // the get: linearizable on etcd too
	if err != nil {
		return err
	}
	if !resp.Succeeded {
		return fail("lease compares did not hold")
	}
	return nil
}

// ---- Compaction ----------------------------------------------------------------------

func compactRevisions(ctx context.Context, e *env) error {
	first, err := e.cli.Put(ctx, e.key("k"), "v1")
	if err != nil {
		return err
	}
	second, err := e.cli.Put(ctx, e.key("k"), "v2")
	if err != nil {
		return err
	}
	if _, err = e.cli.Compact(ctx, second.Header.Revision); err != nil {
		return err
	}
	if err = wantErr(func() error {
		_, err := e.cli.Get(ctx, e.key("k"), clientv3.WithRev(first.Header.Revision))
		return err
	}(), rpctypes.ErrCompacted); err != nil {
		return err
	}
	at, err := e.cli.Get(ctx, e.key("k"), clientv3.WithRev(second.Header.Revision))
	if err != nil {
		return err
	}
	if values(at.Kvs) != e.key("k")+"=v2" {
		return fail("at the compaction revision: %q", values(at.Kvs))
	}
	return wantErr(func() error { _, err := e.cli.Compact(ctx, first.Header.Revision); return err }(),
		rpctypes.ErrCompacted)
}

func compactPhysical(ctx context.Context, e *env) error {
	put, err := e.cli.Put(ctx, e.key("k"), "v")
	if err != nil {
		return err
	}
	if _, err = e.cli.Put(ctx, e.key("k"), "w"); err != nil {
		return err
	}
	if _, err = e.cli.Compact(ctx, put.Header.Revision+1, clientv3.WithCompactPhysical()); err != nil {
		return err
	}
	return wantErr(func() error { _, err := e.cli.Compact(ctx, put.Header.Revision+2); return err }(),
		rpctypes.ErrFutureRev)
}

// ---- Watch ---------------------------------------------------------------------------

// nextEvents reads watch responses until it has n events or the deadline passes.
func nextEvents(wch clientv3.WatchChan, n int, within time.Duration) ([]*clientv3.Event, error) {
	timer := time.NewTimer(within)
	defer timer.Stop()
	var events []*clientv3.Event
	for len(events) < n {
		select {
		case resp, ok := <-wch:
			if !ok {
				return events, fail("watch closed after %d events", len(events))
			}
			if err := resp.Err(); err != nil {
				return events, err
			}
			events = append(events, resp.Events...)
		case <-timer.C:
			return events, fail("%d of %d events within %s", len(events), n, within)
		}
	}
	return events, nil
}

func describe(events []*clientv3.Event) string {
	parts := make([]string, 0, len(events))
	for _, ev := range events {
		parts = append(parts, fmt.Sprintf("%s %s=%s", ev.Type, ev.Kv.Key, ev.Kv.Value))
	}
	return strings.Join(parts, "; ")
}

func watchEvents(ctx context.Context, e *env) error {
	wctx, cancel := context.WithCancel(ctx)
	defer cancel()
	wch := e.cli.Watch(wctx, e.key(""), clientv3.WithPrefix(), clientv3.WithPrevKV(), clientv3.WithCreatedNotify())
	created := <-wch
	if !created.Created {
		return fail("first response is not the creation: %v", created)
	}
	if _, err := putAll(ctx, e, "a", "1", "a", "2"); err != nil {
		return err
	}
	if _, err := e.cli.Delete(ctx, e.key("a")); err != nil {
		return err
	}
	events, err := nextEvents(wch, 3, 5*time.Second)
	if err != nil {
		return err
	}
	if events[0].Type != clientv3.EventTypePut || !events[0].IsCreate() || events[0].PrevKv != nil {
		return fail("first event: %s", describe(events))
	}
	if !events[1].IsModify() || events[1].PrevKv == nil || string(events[1].PrevKv.Value) != "1" {
		return fail("second event lacks prev_kv: %s", describe(events))
	}
	if events[2].Type != clientv3.EventTypeDelete || events[2].PrevKv == nil || string(events[2].PrevKv.Value) != "2" {
		return fail("delete event: %s", describe(events))
	}
	return nil
}

func watchHistory(ctx context.Context, e *env) error {
	start, err := e.cli.Put(ctx, e.key("h"), "1")
	if err != nil {
		return err
	}
	if _, err = putAll(ctx, e, "h", "2", "h", "3"); err != nil {
		return err
	}
	wctx, cancel := context.WithCancel(ctx)
	defer cancel()
	wch := e.cli.Watch(wctx, e.key("h"), clientv3.WithRev(start.Header.Revision))
	events, err := nextEvents(wch, 3, 5*time.Second)
	if err != nil {
		return err
	}
	if got := describe(events); !strings.HasSuffix(got, "=3") || events[0].Kv.ModRevision != start.Header.Revision {
		return fail("history: %s", got)
	}
	return nil
}

func watchFilters(ctx context.Context, e *env) error {
	wctx, cancel := context.WithCancel(ctx)
	defer cancel()
	noPut := e.cli.Watch(wctx, e.key("f"), clientv3.WithFilterPut(), clientv3.WithCreatedNotify())
	noDelete := e.cli.Watch(wctx, e.key("f"), clientv3.WithFilterDelete(), clientv3.WithCreatedNotify())
	<-noPut
	<-noDelete
	if _, err := putAll(ctx, e, "f", "1"); err != nil {
		return err
	}
	if _, err := e.cli.Delete(ctx, e.key("f")); err != nil {
		return err
	}
	deletes, err := nextEvents(noPut, 1, 5*time.Second)
	if err != nil {
		return err
	}
	puts, err := nextEvents(noDelete, 1, 5*time.Second)
	if err != nil {
		return err
	}
	if deletes[0].Type != clientv3.EventTypeDelete || puts[0].Type != clientv3.EventTypePut {
		return fail("NOPUT saw %s, NODELETE saw %s", describe(deletes), describe(puts))
	}
	return nil
}

func watchCompacted(ctx context.Context, e *env) error {
	first, err := e.cli.Put(ctx, e.key("c"), "1")
	if err != nil {
		return err
	}
	last, err := putAll(ctx, e, "c", "2", "c", "3")
	if err != nil {
		return err
	}
	if _, err = e.cli.Compact(ctx, last); err != nil {
		return err
	}
	wctx, cancel := context.WithCancel(ctx)
	defer cancel()
	wch := e.cli.Watch(wctx, e.key("c"), clientv3.WithRev(first.Header.Revision))
	select {
	case resp, ok := <-wch:
		if !ok {
			return fail("watch closed without a response")
		}
		if resp.CompactRevision != last || wantErr(resp.Err(), rpctypes.ErrCompacted) != nil {
			return fail("compact_revision %d (want %d), err %v", resp.CompactRevision, last, resp.Err())
		}
	case <-time.After(5 * time.Second):
		return fail("no response to a watch below the compaction revision")
	}
	// Resuming at the compaction revision itself is served.
	again := e.cli.Watch(wctx, e.key("c"), clientv3.WithRev(last))
	events, err := nextEvents(again, 1, 5*time.Second)
	if err != nil {
		return err
	}
	if events[0].Kv.ModRevision != last {
		return fail("resumed at %d: %s", last, describe(events))
	}
	return nil
}

func watchProgress(ctx context.Context, e *env) error {
	wctx, cancel := context.WithCancel(clientv3.WithRequireLeader(ctx))
	defer cancel()
	wch := e.cli.Watch(wctx, e.key("p"), clientv3.WithCreatedNotify())
	created := <-wch
	if !created.Created {
		return fail("no creation response")
	}
	if _, err := e.cli.Put(ctx, e.key("other"), "v"); err != nil {
		return err
	}
	if err := e.cli.RequestProgress(wctx); err != nil {
		return err
	}
	// The watching member may not have applied the put yet (it can be another member), so
	// the notification's revision is only bounded by the watch's own start.
	timer := time.After(5 * time.Second)
	for {
		select {
		case resp := <-wch:
			if resp.IsProgressNotify() {
				if len(resp.Events) != 0 || resp.Header.Revision < created.Header.Revision {
					return fail("progress at %d with %d events, watch created at %d",
						resp.Header.Revision, len(resp.Events), created.Header.Revision)
				}
				return nil
			}
		case <-timer:
			return fail("no progress notification")
		}
	}
}

func watchCancel(ctx context.Context, e *env) error {
	wctx, cancel := context.WithCancel(ctx)
	wch := e.cli.Watch(wctx, e.key("x"), clientv3.WithCreatedNotify())
	<-wch
	cancel()
	timer := time.After(5 * time.Second)
	for {
		select {
		case _, ok := <-wch:
			if !ok {
				return nil
			}
		case <-timer:
			return fail("the watch channel stayed open after its context was cancelled")
		}
	}
}

func watchManyRevisions(ctx context.Context, e *env) error {
	start, err := e.cli.Put(ctx, e.key("m/0"), "v")
	if err != nil {
		return err
	}
	ops := make([]clientv3.Op, 0, 100)
	for i := 1; i <= 100; i++ {
		ops = append(ops, clientv3.OpPut(e.key(fmt.Sprintf("m/%d", i)), "v"))
	}
	if _, err = e.cli.Txn(ctx).Then(ops...).Commit(); err != nil {
		return err
	}
	for i := 0; i < 50; i++ {
		if _, err = e.cli.Put(ctx, e.key("m/0"), fmt.Sprint(i)); err != nil {
			return err
		}
	}
	wctx, cancel := context.WithCancel(ctx)
	defer cancel()
	wch := e.cli.Watch(wctx, e.key("m/"), clientv3.WithPrefix(), clientv3.WithRev(start.Header.Revision))
	events, err := nextEvents(wch, 151, 10*time.Second)
	if err != nil {
		return err
	}
	txnRev := events[1].Kv.ModRevision
	for _, ev := range events[1:101] {
		if ev.Kv.ModRevision != txnRev {
			return fail("events of one txn carry revisions %d and %d", txnRev, ev.Kv.ModRevision)
		}
	}
	return nil
}

// ---- Lease ---------------------------------------------------------------------------

func leaseGrantTTL(ctx context.Context, e *env) error {
	lease, err := e.cli.Grant(ctx, 30)
	if err != nil {
		return err
	}
	if lease.TTL != 30 || lease.ID == 0 {
		return fail("grant: id %x ttl %d", lease.ID, lease.TTL)
	}
	if _, err = e.cli.Put(ctx, e.key("a"), "v", clientv3.WithLease(lease.ID)); err != nil {
		return err
	}
	if _, err = e.cli.Put(ctx, e.key("b"), "v", clientv3.WithLease(lease.ID)); err != nil {
		return err
	}
	ttl, err := e.cli.TimeToLive(ctx, lease.ID, clientv3.WithAttachedKeys())
	if err != nil {
		return err
	}
	if ttl.GrantedTTL != 30 || ttl.TTL < 25 || ttl.TTL > 30 || len(ttl.Keys) != 2 {
		return fail("time to live: granted %d ttl %d keys %d", ttl.GrantedTTL, ttl.TTL, len(ttl.Keys))
	}
	chosen, err := e.cli.Grant(ctx, 30)
	if err != nil {
		return err
	}
	if chosen.ID == lease.ID {
		return fail("two grants gave one id")
	}
	return nil
}

func leaseKeepAliveOnce(ctx context.Context, e *env) error {
	lease, err := e.cli.Grant(ctx, 20)
	if err != nil {
		return err
	}
	ka, err := e.cli.KeepAliveOnce(ctx, lease.ID)
	if err != nil {
		return err
	}
	if ka.ID != lease.ID || ka.TTL != 20 {
		return fail("keepalive: id %x ttl %d", ka.ID, ka.TTL)
	}
	return nil
}

func leaseKeepAliveStream(ctx context.Context, e *env) error {
	lease, err := e.cli.Grant(ctx, 3)
	if err != nil {
		return err
	}
	if _, err = e.cli.Put(ctx, e.key("kept"), "v", clientv3.WithLease(lease.ID)); err != nil {
		return err
	}
	kctx, cancel := context.WithCancel(ctx)
	defer cancel()
	ch, err := e.cli.KeepAlive(kctx, lease.ID)
	if err != nil {
		return err
	}
	deadline := time.After(5 * time.Second) // longer than the TTL: only keep-alives save the key
	answers := 0
	for done := false; !done; {
		select {
		case resp, ok := <-ch:
			if !ok {
				return fail("keep-alive channel closed after %d answers", answers)
			}
			if resp.TTL != 3 {
				return fail("keep-alive answered ttl %d", resp.TTL)
			}
			answers++
		case <-deadline:
			done = true
		}
	}
	get, err := e.cli.Get(ctx, e.key("kept"))
	if err != nil {
		return err
	}
	if len(get.Kvs) != 1 || answers < 2 {
		return fail("after 5 s of keep-alives: %d keys, %d answers", len(get.Kvs), answers)
	}
	return nil
}

func leaseRevoke(ctx context.Context, e *env) error {
	lease, err := e.cli.Grant(ctx, 60)
	if err != nil {
		return err
	}
	if _, err = e.cli.Put(ctx, e.key("r"), "v", clientv3.WithLease(lease.ID)); err != nil {
		return err
	}
	if _, err = e.cli.Revoke(ctx, lease.ID); err != nil {
		return err
	}
	get, err := e.cli.Get(ctx, e.key("r"))
	if err != nil {
		return err
	}
	if len(get.Kvs) != 0 {
		return fail("key survived the revoke")
	}
	if err = wantErr(func() error { _, err := e.cli.Revoke(ctx, lease.ID); return err }(),
		rpctypes.ErrLeaseNotFound); err != nil {
		return err
	}
	ttl, err := e.cli.TimeToLive(ctx, lease.ID)
	if err != nil {
		return err
	}
	if ttl.TTL != -1 {
		return fail("time to live of a revoked lease: %d, want -1", ttl.TTL)
	}
	return nil
}

func leaseExpiry(ctx context.Context, e *env) error {
	lease, err := e.cli.Grant(ctx, 2)
	if err != nil {
		return err
	}
	wctx, cancel := context.WithCancel(ctx)
	defer cancel()
	if _, err = e.cli.Put(ctx, e.key("x"), "v", clientv3.WithLease(lease.ID)); err != nil {
		return err
	}
	wch := e.cli.Watch(wctx, e.key("x"), clientv3.WithFilterPut())
	events, err := nextEvents(wch, 1, 10*time.Second)
	if err != nil {
		return fail("the key of a 2 s lease: %v", err)
	}
	if events[0].Type != clientv3.EventTypeDelete {
		return fail("expiry event: %s", describe(events))
	}
	return nil
}

func leaseList(ctx context.Context, e *env) error {
	lease, err := e.cli.Grant(ctx, 60)
	if err != nil {
		return err
	}
	list, err := e.cli.Leases(ctx)
	if err != nil {
		return err
	}
	for _, l := range list.Leases {
		if l.ID == lease.ID {
			return nil
		}
	}
	return fail("lease %x not listed among %d", lease.ID, len(list.Leases))
}

func leaseErrors(ctx context.Context, e *env) error {
	const unknown = clientv3.LeaseID(0x7fff_0000_0000_0001)
	if err := wantErr(func() error { _, err := e.cli.KeepAliveOnce(ctx, unknown); return err }(),
		rpctypes.ErrLeaseNotFound); err != nil {
		return err
	}
	if err := wantErr(func() error {
		_, err := e.cli.Put(ctx, e.key("k"), "v", clientv3.WithLease(unknown))
		return err
	}(), rpctypes.ErrLeaseNotFound); err != nil {
		return err
	}
	return nil
}

// ---- Cluster and maintenance ---------------------------------------------------------

func clusterMemberList(ctx context.Context, e *env) error {
	list, err := e.cli.MemberList(ctx)
	if err != nil {
		return err
	}
	if len(list.Members) != len(e.endpoints) {
		return fail("%d members, want %d", len(list.Members), len(e.endpoints))
	}
	var urls []string
	for _, m := range list.Members {
		if m.ID == 0 || m.Name == "" || len(m.PeerURLs) == 0 || m.IsLearner {
			return fail("member %v", m)
		}
		urls = append(urls, m.ClientURLs...)
	}
	sort.Strings(urls)
	for _, ep := range e.endpoints {
		i := sort.SearchStrings(urls, ep)
		if i == len(urls) || urls[i] != ep {
			return fail("client URL %s not listed (%v)", ep, urls)
		}
	}
	return nil
}

func maintenanceStatus(ctx context.Context, e *env) error {
	leaders := map[uint64]bool{}
	for _, ep := range e.endpoints {
		st, err := e.cli.Status(ctx, strings.TrimPrefix(ep, "http://"))
		if err != nil {
			return err
		}
		if st.Version == "" || st.Leader == 0 || st.RaftTerm == 0 || st.RaftIndex == 0 || st.DbSize == 0 {
			return fail("status of %s: %v", ep, st)
		}
		leaders[st.Leader] = true
	}
	if len(leaders) != 1 {
		return fail("members name %d leaders", len(leaders))
	}
	return nil
}

func maintenanceAlarms(ctx context.Context, e *env) error {
	alarms, err := e.cli.AlarmList(ctx)
	if err != nil {
		return err
	}
	if len(alarms.Alarms) != 0 {
		return fail("alarms raised on a fresh cluster: %v", alarms.Alarms)
	}
	return nil
}

func maintenanceHashKV(ctx context.Context, e *env) error {
	put, err := e.cli.Put(ctx, e.key("k"), "v")
	if err != nil {
		return err
	}
	hashes := map[uint32]bool{}
	for _, ep := range e.endpoints {
		one, err := newClient([]string{ep})
		if err != nil {
			return err
		}
		// A linearizable read makes the member catch up with the put before hashing.
		if _, err = one.Get(ctx, e.key("k")); err == nil {
			var resp *clientv3.HashKVResponse
			resp, err = one.HashKV(ctx, strings.TrimPrefix(ep, "http://"), put.Header.Revision)
			if err == nil {
				hashes[resp.Hash] = true
			}
		}
		one.Close()
		if err != nil {
			return err
		}
	}
	if len(hashes) != 1 {
		return fail("members hash revision %d differently: %v", put.Header.Revision, hashes)
	}
	return nil
}

func maintenanceDefragment(ctx context.Context, e *env) error {
	_, err := e.cli.Defragment(ctx, strings.TrimPrefix(e.endpoints[0], "http://"))
	return err
}

func grpcHealth(ctx context.Context, e *env) error {
	conn, err := grpc.DialContext(ctx, strings.TrimPrefix(e.endpoints[0], "http://"),
		grpc.WithTransportCredentials(insecure.NewCredentials()))
	if err != nil {
		return err
	}
	defer conn.Close()
	resp, err := healthpb.NewHealthClient(conn).Check(ctx, &healthpb.HealthCheckRequest{})
	if err != nil {
		return err
	}
	if resp.Status != healthpb.HealthCheckResponse_SERVING {
		return fail("health: %s", resp.Status)
	}
	return nil
}

// ---- Auth (users and roles only: enabling auth would change every other check) -------

func authUsersRoles(ctx context.Context, e *env) error {
	user, role := "goclient-user", "goclient-role"
	if _, err := e.cli.UserAdd(ctx, user, "secret"); err != nil {
		return err
	}
	if err := wantErr(func() error { _, err := e.cli.UserAdd(ctx, user, "secret"); return err }(),
		rpctypes.ErrUserAlreadyExist); err != nil {
		return err
	}
	if _, err := e.cli.RoleAdd(ctx, role); err != nil {
		return err
	}
	if _, err := e.cli.RoleGrantPermission(ctx, role, e.key(""), clientv3.GetPrefixRangeEnd(e.key("")),
		clientv3.PermissionType(clientv3.PermReadWrite)); err != nil {
		return err
	}
	if _, err := e.cli.UserGrantRole(ctx, user, role); err != nil {
		return err
	}
	got, err := e.cli.UserGet(ctx, user)
	if err != nil {
		return err
	}
	if len(got.Roles) != 1 || got.Roles[0] != role {
		return fail("user roles %v", got.Roles)
	}
	perms, err := e.cli.RoleGet(ctx, role)
	if err != nil {
		return err
	}
	if len(perms.Perm) != 1 || string(perms.Perm[0].Key) != e.key("") {
		return fail("role permissions %v", perms.Perm)
	}
	if err = wantErr(func() error { _, err := e.cli.UserGet(ctx, "nobody"); return err }(),
		rpctypes.ErrUserNotFound); err != nil {
		return err
	}
	if _, err = e.cli.UserDelete(ctx, user); err != nil {
		return err
	}
	_, err = e.cli.RoleDelete(ctx, role)
	return err
}

// ---- concurrency ---------------------------------------------------------------------

func concurrencyMutex(ctx context.Context, e *env) error {
	s1, err := concurrency.NewSession(e.cli, concurrency.WithTTL(10))
	if err != nil {
		return err
	}
	defer s1.Close()
	s2, err := concurrency.NewSession(e.cli, concurrency.WithTTL(10))
	if err != nil {
		return err
	}
	defer s2.Close()
	m1 := concurrency.NewMutex(s1, e.key("lock"))
	m2 := concurrency.NewMutex(s2, e.key("lock"))
	if err = m1.Lock(ctx); err != nil {
		return err
	}
	if err = m2.TryLock(ctx); !errors.Is(err, concurrency.ErrLocked) {
		return fail("TryLock of a held lock: %v", err)
	}
	acquired := make(chan error, 1)
	go func() { acquired <- m2.Lock(ctx) }()
	select {
	case err = <-acquired:
		return fail("second Lock returned while the first was held: %v", err)
	case <-time.After(300 * time.Millisecond):
	}
	if err = m1.Unlock(ctx); err != nil {
		return err
	}
	select {
	case err = <-acquired:
		if err != nil {
			return err
		}
	case <-time.After(5 * time.Second):
		return fail("waiter not woken by Unlock")
	}
	return m2.Unlock(ctx)
}

func concurrencyElection(ctx context.Context, e *env) error {
	s1, err := concurrency.NewSession(e.cli, concurrency.WithTTL(10))
	if err != nil {
		return err
	}
	defer s1.Close()
	s2, err := concurrency.NewSession(e.cli, concurrency.WithTTL(10))
	if err != nil {
		return err
	}
	defer s2.Close()
	e1 := concurrency.NewElection(s1, e.key("election"))
	e2 := concurrency.NewElection(s2, e.key("election"))
	if err = e1.Campaign(ctx, "first"); err != nil {
		return err
	}
	octx, cancel := context.WithCancel(ctx)
	defer cancel()
	observed := e1.Observe(octx)
	won := make(chan error, 1)
	go func() { won <- e2.Campaign(ctx, "second") }()
	leader, err := e1.Leader(ctx)
	if err != nil {
		return err
	}
	if string(leader.Kvs[0].Value) != "first" {
		return fail("leader %q", leader.Kvs[0].Value)
	}
	if err = e1.Proclaim(ctx, "first-again"); err != nil {
		return err
	}
	if err = e1.Resign(ctx); err != nil {
		return err
	}
	select {
	case err = <-won:
		if err != nil {
			return err
		}
	case <-time.After(5 * time.Second):
		return fail("second candidate did not win after the resign")
	}
	seen := []string{}
	timer := time.After(5 * time.Second)
	for len(seen) == 0 || seen[len(seen)-1] != "second" {
		select {
		case resp := <-observed:
			seen = append(seen, string(resp.Kvs[0].Value))
		case <-timer:
			return fail("observed %v", seen)
		}
	}
	return e2.Resign(ctx)
}

func concurrencySTM(ctx context.Context, e *env) error {
	counter := e.key("counter")
	if _, err := e.cli.Put(ctx, counter, "0"); err != nil {
		return err
	}
	var wg sync.WaitGroup
	errs := make(chan error, 4)
	for w := 0; w < 4; w++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := 0; i < 5; i++ {
				_, err := concurrency.NewSTM(e.cli, func(stm concurrency.STM) error {
					var n int
					fmt.Sscan(stm.Get(counter), &n)
					stm.Put(counter, fmt.Sprint(n+1))
					return nil
				}, concurrency.WithIsolation(concurrency.SerializableSnapshot), concurrency.WithAbortContext(ctx))
				if err != nil {
					errs <- err
					return
				}
			}
		}()
	}
	wg.Wait()
	close(errs)
	if err := <-errs; err != nil {
		return err
	}
	get, err := e.cli.Get(ctx, counter)
	if err != nil {
		return err
	}
	if string(get.Kvs[0].Value) != "20" {
		return fail("counter %s after 20 increments", get.Kvs[0].Value)
	}
	return nil
}

func txnRangeCompare(ctx context.Context, e *env) error {
	if _, err := putAll(ctx, e, "p/a", "1", "p/b", "2"); err != nil {
		return err
	}
	prefix := e.key("p/")
	// The get makes etcd serve the txn linearizably: etcd takes a txn whose ops are all
	// serializable reads, none at all included, as serializable and answers it from the
	// member's own state, which may not have the puts yet.
	read := clientv3.OpGet(prefix, clientv3.WithPrefix(), clientv3.WithCountOnly())
	all, err := e.cli.Txn(ctx).If(clientv3.Compare(clientv3.Version(prefix), ">", 0).WithPrefix()).
		Then(read).Commit()
	if err != nil {
		return err
	}
	if !all.Succeeded {
		return fail("version > 0 over the prefix did not hold")
	}
	some, err := e.cli.Txn(ctx).If(clientv3.Compare(clientv3.Value(prefix), "=", "1").WithPrefix()).
		Then(read).Commit()
	if err != nil {
		return err
	}
	if some.Succeeded {
		return fail("value = 1 held over a prefix where one key is 2")
	}
	return nil
}

func watchFragment(ctx context.Context, e *env) error {
	big := strings.Repeat("f", 700*1024) // three of them pass the 1.5 MiB request limit
	start, err := e.cli.Put(ctx, e.key("big/0"), big)
	if err != nil {
		return err
	}
	if _, err = putAll(ctx, e, "big/1", big, "big/2", big); err != nil {
		return err
	}
	wctx, cancel := context.WithCancel(ctx)
	defer cancel()
	wch := e.cli.Watch(wctx, e.key("big/"), clientv3.WithPrefix(), clientv3.WithFragment(),
		clientv3.WithRev(start.Header.Revision))
	events, err := nextEvents(wch, 3, 10*time.Second)
	if err != nil {
		return err
	}
	for _, ev := range events {
		if len(ev.Kv.Value) != len(big) {
			return fail("an event of %d bytes, want %d", len(ev.Kv.Value), len(big))
		}
	}
	return nil
}

func clusterLearner(ctx context.Context, e *env) error {
	added, err := e.cli.MemberAddAsLearner(ctx, []string{"http://127.250.0.1:2380"})
	if err != nil {
		return err
	}
	id := added.Member.ID
	if !added.Member.IsLearner || len(added.Members) != len(e.endpoints)+1 {
		return fail("added %v, %d members", added.Member, len(added.Members))
	}
	if err = wantErr(func() error { _, err := e.cli.MemberPromote(ctx, id); return err }(),
		rpctypes.ErrMemberLearnerNotReady); err != nil {
		return err
	}
	if _, err = e.cli.MemberUpdate(ctx, id, []string{"http://127.250.0.2:2380"}); err != nil {
		return err
	}
	// etcd 3.4 serves MemberList from the answering member's state, which may not have
	// applied the update yet (3.5 and this store honour Linearizable): look a few times.
	var list *clientv3.MemberListResponse
	found := false
	for attempt := 0; attempt < 20 && !found; attempt++ {
		if attempt > 0 {
			time.Sleep(100 * time.Millisecond)
		}
		if list, err = e.cli.MemberList(ctx); err != nil {
			return err
		}
		for _, m := range list.Members {
			// Not m.IsLearner: etcd 3.4 lists an updated learner as a voter (3.5 does not).
			if m.ID == id && len(m.PeerURLs) == 1 && m.PeerURLs[0] == "http://127.250.0.2:2380" {
				found = true
			}
		}
	}
	if !found {
		return fail("the learner is not listed with its new peer URL: %v", list.Members)
	}
	if _, err = e.cli.MemberRemove(ctx, id); err != nil {
		return err
	}
	return wantErr(func() error { _, err := e.cli.MemberRemove(ctx, id); return err }(),
		rpctypes.ErrMemberNotFound)
}

func maintenanceSnapshot(ctx context.Context, e *env) error {
	if _, err := putAll(ctx, e, "k", "v"); err != nil {
		return err
	}
	rc, err := e.cli.Snapshot(ctx)
	if err != nil {
		return err
	}
	defer rc.Close()
	n, err := io.Copy(io.Discard, rc)
	if err != nil {
		return err
	}
	if n == 0 {
		return fail("an empty snapshot")
	}
	return nil
}

func maintenanceMoveLeader(ctx context.Context, e *env) error {
	var leader uint64
	ids := map[string]uint64{}
	for _, ep := range e.endpoints {
		st, err := e.cli.Status(ctx, strings.TrimPrefix(ep, "http://"))
		if err != nil {
			return err
		}
		ids[ep], leader = st.Header.MemberId, st.Leader
	}
	var leaderEP, followerEP string
	for ep, id := range ids {
		if id == leader {
			leaderEP = ep
		} else {
			followerEP = ep
		}
	}
	if leaderEP == "" || followerEP == "" {
		return fail("no leader and follower among %v (leader %x)", ids, leader)
	}
	// Sent to the leader, as etcd requires (a follower answers "etcdserver: not leader"
	// there; this store forwards it to the leader instead, see docs/compatibility.md).
	lead, err := newClient([]string{leaderEP})
	if err != nil {
		return err
	}
	defer lead.Close()
	if _, err = lead.MoveLeader(ctx, ids[followerEP]); err != nil {
		return err
	}
	deadline := time.Now().Add(5 * time.Second)
	for time.Now().Before(deadline) {
		st, err := e.cli.Status(ctx, strings.TrimPrefix(followerEP, "http://"))
		if err == nil && st.Leader == ids[followerEP] {
			return nil
		}
		time.Sleep(50 * time.Millisecond)
	}
	return fail("leadership did not move to %x", ids[followerEP])
}

func concurrencySessionExpiry(ctx context.Context, e *env) error {
	s1, err := concurrency.NewSession(e.cli, concurrency.WithTTL(2))
	if err != nil {
		return err
	}
	s2, err := concurrency.NewSession(e.cli, concurrency.WithTTL(10))
	if err != nil {
		return err
	}
	defer s2.Close()
	if err = concurrency.NewMutex(s1, e.key("lock")).Lock(ctx); err != nil {
		return err
	}
	s1.Orphan() // stop the keep-alives: the holder vanishes without unlocking
	started := time.Now()
	m2 := concurrency.NewMutex(s2, e.key("lock"))
	if err = m2.Lock(ctx); err != nil {
		return fail("the lock of an expired session was not handed on: %v", err)
	}
	if waited := time.Since(started); waited > 8*time.Second {
		return fail("handed on after %s (session TTL 2 s)", waited)
	}
	return m2.Unlock(ctx)
}

// authEnable runs last: it turns auth on, checks tokens, and turns it off again.
func authEnable(ctx context.Context, e *env) error {
	if _, err := e.cli.RoleAdd(ctx, "root"); err != nil {
		return err
	}
	if _, err := e.cli.UserAdd(ctx, "root", "rootpw"); err != nil {
		return err
	}
	if _, err := e.cli.UserGrantRole(ctx, "root", "root"); err != nil {
		return err
	}
	if _, err := e.cli.AuthEnable(ctx); err != nil {
		return err
	}
	if err := wantErr(func() error { _, err := e.cli.Put(ctx, e.key("anon"), "v"); return err }(),
		rpctypes.ErrUserEmpty); err != nil {
		return fail("a put without a token: %v", err)
	}
	_, err := clientv3.New(clientv3.Config{Endpoints: e.endpoints, Username: "root", Password: "wrong",
		DialTimeout: 5 * time.Second, Logger: zap.NewNop()})
	if wantErr(err, rpctypes.ErrAuthFailed) != nil {
		return fail("a wrong password: %v", err)
	}
	root, err := clientv3.New(clientv3.Config{Endpoints: e.endpoints, Username: "root", Password: "rootpw",
		DialTimeout: 5 * time.Second, Logger: zap.NewNop()})
	if err != nil {
		return err
	}
	defer root.Close()
	if _, err = root.Put(ctx, e.key("root"), "v"); err != nil {
		return err
	}
	if _, err = root.AuthDisable(ctx); err != nil {
		return err
	}
	_, err = e.cli.Put(ctx, e.key("anon"), "v")
	return err
}

// ---- main ----------------------------------------------------------------------------

var checks = []check{
	{"kv.put_get", kvPutGet},
	{"kv.put_prev_kv", kvPutPrevKV},
	{"kv.put_ignore_value", kvPutIgnoreValue},
	{"kv.put_ignore_lease", kvPutIgnoreLease},
	{"kv.get_sort_limit", kvGetSortLimit},
	{"kv.get_count_keys_only", kvGetCountKeysOnly},
	{"kv.get_ranges", kvGetRanges},
	{"kv.get_at_revision", kvGetAtRevision},
	{"kv.get_revision_filters", kvGetRevisionFilters},
	{"kv.get_serializable", kvGetSerializable},
	{"kv.delete_prefix_prev_kv", kvDeletePrefix},
	{"kv.errors", kvErrors},
	{"kv.option_errors", kvOptionErrors},
	{"txn.compares", txnCompares},
	{"txn.nested", txnNested},
	{"txn.errors", txnErrors},
	{"txn.range_compare", txnRangeCompare},
	{"txn.lease_compare", txnLeaseCompare},
	{"compact.revisions", compactRevisions},
	{"compact.physical", compactPhysical},
	{"watch.events_prev_kv", watchEvents},
	{"watch.history", watchHistory},
	{"watch.filters", watchFilters},
	{"watch.compacted", watchCompacted},
	{"watch.progress", watchProgress},
	{"watch.cancel", watchCancel},
	{"watch.many_revisions", watchManyRevisions},
	{"watch.fragment", watchFragment},
	{"lease.grant_ttl", leaseGrantTTL},
	{"lease.keepalive_once", leaseKeepAliveOnce},
	{"lease.keepalive_stream", leaseKeepAliveStream},
	{"lease.revoke", leaseRevoke},
	{"lease.expiry", leaseExpiry},
	{"lease.list", leaseList},
	{"lease.errors", leaseErrors},
	{"cluster.member_list", clusterMemberList},
	{"cluster.learner", clusterLearner},
	{"maintenance.status", maintenanceStatus},
	{"maintenance.alarms", maintenanceAlarms},
	{"maintenance.hashkv", maintenanceHashKV},
	{"maintenance.defragment", maintenanceDefragment},
	{"maintenance.snapshot", maintenanceSnapshot},
	{"grpc.health", grpcHealth},
	{"auth.users_roles", authUsersRoles},
	{"concurrency.mutex", concurrencyMutex},
	{"concurrency.election", concurrencyElection},
	{"concurrency.stm", concurrencySTM},
	{"concurrency.session_expiry", concurrencySessionExpiry},
	{"maintenance.move_leader", maintenanceMoveLeader},
	{"auth.enable", authEnable}, // last: it turns auth on and off
}

func newClient(endpoints []string) (*clientv3.Client, error) {
	return clientv3.New(clientv3.Config{
		Endpoints:   endpoints,
		DialTimeout: 5 * time.Second,
		Logger:      zap.NewNop(),
	})
}

func main() {
	endpoints := flag.String("endpoints", "", "comma-separated client URLs (http://host:port)")
	only := flag.String("only", "", "comma-separated check names to run (default: all)")
	list := flag.Bool("list", false, "print the check names and exit")
	timeout := flag.Duration("timeout", 20*time.Second, "time limit of one check")
	flag.Parse()
	if *list {
		for _, c := range checks {
			fmt.Println(c.name)
		}
		return
	}
	if *endpoints == "" {
		fmt.Fprintln(os.Stderr, "goclient: --endpoints is required")
		os.Exit(2)
	}
	wanted := map[string]bool{}
	for _, name := range strings.Split(*only, ",") {
		if name != "" {
			wanted[name] = true
		}
	}
	for name := range wanted {
		known := false
		for _, c := range checks {
			known = known || c.name == name
		}
		if !known {
			fmt.Fprintf(os.Stderr, "goclient: unknown check %q (see --list)\n", name)
			os.Exit(2)
		}
	}
	eps := strings.Split(*endpoints, ",")
	cli, err := newClient(eps)
	if err != nil {
		fmt.Fprintf(os.Stderr, "goclient: %v\n", err)
		os.Exit(2)
	}
	defer cli.Close()
	out := json.NewEncoder(os.Stdout)
	for _, c := range checks {
		if len(wanted) > 0 && !wanted[c.name] {
			continue
		}
		ctx, cancel := context.WithTimeout(context.Background(), *timeout)
		started := time.Now()
		err := c.run(ctx, &env{cli: cli, endpoints: eps, prefix: "/goclient/" + c.name + "/"})
		cancel()
		r := result{Check: c.name, OK: err == nil, MS: time.Since(started).Milliseconds()}
		if err != nil {
			r.Error = err.Error()
		}
		if err := out.Encode(r); err != nil {
			os.Exit(2)
		}
	}
}
