// Per-endpoint bandwidth limits: every Fs whose config carries `orbit_endpoint` is wrapped
// in an overlay that makes the bytes it reads (download) and writes (upload) wait on a
// token bucket shared by every Fs and every job of that endpoint, and, for remote
// backends, on the service-wide bucket too. The host sets the rates (rc `orbit/bwlimit`,
// bytes per second, 0 = no limit) and reads the byte counters (rc `orbit/bwstats`);
// timetables are the host's business. Server-side copies and moves move no bytes through
// this process and are not charged.
package main

import (
	"context"
	"errors"
	"io"
	"sync"
	"sync/atomic"

	"github.com/rclone/rclone/fs"
	"github.com/rclone/rclone/fs/accounting"
	"github.com/rclone/rclone/fs/config/configmap"
	"github.com/rclone/rclone/fs/rc"
	"golang.org/x/time/rate"
)

// endpointKey is the config key naming the endpoint an Fs belongs to.
const endpointKey = "orbit_endpoint"

// meter is one direction of one endpoint: a token bucket and the bytes that passed it.
type meter struct {
	limiter *rate.Limiter
	bytes   atomic.Int64
	limit   atomic.Int64 // bytes per second, 0 = none
}

func newMeter() *meter { return &meter{limiter: rate.NewLimiter(rate.Inf, 0)} }

// set changes the rate at once, also for waits in progress. The burst is a tenth of a
// second of the rate (at least 32 KiB), so no transfer runs ahead of its cap for long.
func (m *meter) set(bytesPerSecond int64) {
	m.limit.Store(max(bytesPerSecond, 0))
	if bytesPerSecond <= 0 {
		m.limiter.SetLimit(rate.Inf)
		return
	}
	m.limiter.SetBurst(int(max(bytesPerSecond/10, 32<<10)))
	m.limiter.SetLimit(rate.Limit(bytesPerSecond))
}

// take waits until the bucket lets n bytes pass, counting them as they do; a cancelled
// ctx ends the wait at once.
func (m *meter) take(ctx context.Context, n int) error {
	for n > 0 {
		if m.limiter.Limit() == rate.Inf {
			m.bytes.Add(int64(n))
			return nil
		}
		k := min(n, m.limiter.Burst())
		if err := m.limiter.WaitN(ctx, k); err != nil {
			if ctx.Err() != nil {
				return ctx.Err()
			}
			if k <= m.limiter.Burst() {
				return err
			}
			continue // the burst shrank under a new rate: take smaller steps
		}
		m.bytes.Add(int64(k))
		n -= k
	}
	return nil
}

// direction: upload (bytes written to the endpoint) or download (bytes read from it).
type direction int

const (
	upload direction = iota
	download
)

type meters struct{ up, down *meter }

func newMeters() *meters { return &meters{up: newMeter(), down: newMeter()} }

func (m *meters) of(dir direction) *meter {
	if dir == upload {
		return m.up
	}
	return m.down
}

var (
	endpointMeters sync.Map // endpoint name -> *meters
	serviceMeters  = newMeters()
)

func metersFor(endpoint string) *meters {
	if m, ok := endpointMeters.Load(endpoint); ok {
		return m.(*meters)
	}
	m, _ := endpointMeters.LoadOrStore(endpoint, newMeters())
	return m.(*meters)
}

// throttle is what one Fs waits on: its endpoint and, for remote backends, the service.
type throttle struct {
	own     *meters
	service *meters // nil for local disks
}

func (t throttle) take(ctx context.Context, dir direction, n int) error {
	if err := t.own.of(dir).take(ctx, n); err != nil {
		return err
	}
	if t.service != nil {
		return t.service.of(dir).take(ctx, n)
	}
	return nil
}

type throttledReader struct {
	ctx context.Context
	in  io.Reader
	t   throttle
	dir direction
}

func (r *throttledReader) Read(p []byte) (int, error) {
	n, err := r.in.Read(p)
	if n > 0 {
		if waitErr := r.t.take(r.ctx, r.dir, n); waitErr != nil {
			return n, waitErr
		}
	}
	return n, err
}

type throttledReadCloser struct {
	throttledReader
	io.Closer
}

// uploading puts the throttle under rclone's accounting, which stays on top.
func (t throttle) uploading(ctx context.Context, in io.Reader) io.Reader {
	raw, wrap := accounting.UnWrap(in)
	return wrap(&throttledReader{ctx: ctx, in: raw, t: t, dir: upload})
}

// throttledFs is the overlay: the base Fs with every byte-moving path throttled and every
// object it hands out wrapped.
type throttledFs struct {
	fs.Fs
	t        throttle
	features *fs.Features
}

type throttledObject struct {
	fs.Object
	f *throttledFs
}

func wrapFs(base fs.Fs, t throttle) *throttledFs {
	f := &throttledFs{Fs: base, t: t}
	baseFt := base.Features()
	ft := *baseFt // every feature of the base, then the byte-moving ones replaced
	ft.UnWrap = nil
	ft.WrapFs = nil
	ft.SetWrapper = nil
	if baseFt.ListR != nil {
		ft.ListR = func(ctx context.Context, dir string, callback fs.ListRCallback) error {
			return baseFt.ListR(ctx, dir, func(entries fs.DirEntries) error { return callback(f.wrapEntries(entries)) })
		}
	}
	if baseFt.ListP != nil {
		ft.ListP = func(ctx context.Context, dir string, callback fs.ListRCallback) error {
			return baseFt.ListP(ctx, dir, func(entries fs.DirEntries) error { return callback(f.wrapEntries(entries)) })
		}
	}
	if baseFt.PutStream != nil {
		ft.PutStream = func(ctx context.Context, in io.Reader, src fs.ObjectInfo, options ...fs.OpenOption) (fs.Object, error) {
			return f.wrapObject(baseFt.PutStream(ctx, t.uploading(ctx, in), src, options...))
		}
	}
	if baseFt.PutUnchecked != nil {
		ft.PutUnchecked = func(ctx context.Context, in io.Reader, src fs.ObjectInfo, options ...fs.OpenOption) (fs.Object, error) {
			return f.wrapObject(baseFt.PutUnchecked(ctx, t.uploading(ctx, in), src, options...))
		}
	}
	if baseFt.Copy != nil {
		ft.Copy = func(ctx context.Context, src fs.Object, remote string) (fs.Object, error) {
			return f.wrapObject(baseFt.Copy(ctx, unwrapObject(src), remote))
		}
	}
	if baseFt.Move != nil {
		ft.Move = func(ctx context.Context, src fs.Object, remote string) (fs.Object, error) {
			return f.wrapObject(baseFt.Move(ctx, unwrapObject(src), remote))
		}
	}
	if baseFt.DirMove != nil {
		ft.DirMove = func(ctx context.Context, src fs.Fs, srcRemote, dstRemote string) error {
			if other, ok := src.(*throttledFs); ok {
				src = other.Fs
			}
			return baseFt.DirMove(ctx, src, srcRemote, dstRemote)
		}
	}
	if baseFt.OpenWriterAt != nil {
		ft.OpenWriterAt = func(ctx context.Context, remote string, size int64) (fs.WriterAtCloser, error) {
			w, err := baseFt.OpenWriterAt(ctx, remote, size)
			if err != nil {
				return w, err
			}
			return &throttledWriterAt{WriterAtCloser: w, ctx: ctx, t: t}, nil
		}
	}
	if baseFt.OpenChunkWriter != nil {
		ft.OpenChunkWriter = func(ctx context.Context, remote string, src fs.ObjectInfo, options ...fs.OpenOption) (fs.ChunkWriterInfo, fs.ChunkWriter, error) {
			info, w, err := baseFt.OpenChunkWriter(ctx, remote, src, options...)
			if err != nil {
				return info, w, err
			}
			return info, &throttledChunkWriter{ChunkWriter: w, t: t}, nil
		}
	}
	f.features = &ft
	return f
}

func (f *throttledFs) Features() *fs.Features { return f.features }

func (f *throttledFs) List(ctx context.Context, dir string) (fs.DirEntries, error) {
	entries, err := f.Fs.List(ctx, dir)
	return f.wrapEntries(entries), err
}

func (f *throttledFs) NewObject(ctx context.Context, remote string) (fs.Object, error) {
	return f.wrapObject(f.Fs.NewObject(ctx, remote))
}

func (f *throttledFs) Put(ctx context.Context, in io.Reader, src fs.ObjectInfo, options ...fs.OpenOption) (fs.Object, error) {
	return f.wrapObject(f.Fs.Put(ctx, f.t.uploading(ctx, in), src, options...))
}

func (f *throttledFs) wrapObject(o fs.Object, err error) (fs.Object, error) {
	if o == nil {
		return o, err
	}
	return &throttledObject{Object: o, f: f}, err
}

func (f *throttledFs) wrapEntries(entries fs.DirEntries) fs.DirEntries {
	for i, entry := range entries {
		if o, ok := entry.(fs.Object); ok {
			entries[i] = &throttledObject{Object: o, f: f}
		}
	}
	return entries
}

func unwrapObject(o fs.Object) fs.Object {
	if t, ok := o.(*throttledObject); ok {
		return t.Object
	}
	return o
}

func (o *throttledObject) Fs() fs.Info { return o.f }

// UnWrap lets rclone see the base object (for server-side operations); its bytes are
// never read through it.
func (o *throttledObject) UnWrap() fs.Object { return o.Object }

func (o *throttledObject) Open(ctx context.Context, options ...fs.OpenOption) (io.ReadCloser, error) {
	in, err := o.Object.Open(ctx, options...)
	if err != nil {
		return in, err
	}
	return &throttledReadCloser{throttledReader{ctx: ctx, in: in, t: o.f.t, dir: download}, in}, nil
}

func (o *throttledObject) Update(ctx context.Context, in io.Reader, src fs.ObjectInfo, options ...fs.OpenOption) error {
	return o.Object.Update(ctx, o.f.t.uploading(ctx, in), src, options...)
}

// Metadata keeps the base object's metadata visible through the overlay.
func (o *throttledObject) Metadata(ctx context.Context) (fs.Metadata, error) {
	if m, ok := o.Object.(fs.Metadataer); ok {
		return m.Metadata(ctx)
	}
	return nil, nil
}

func (o *throttledObject) MimeType(ctx context.Context) string {
	if m, ok := o.Object.(fs.MimeTyper); ok {
		return m.MimeType(ctx)
	}
	return ""
}

type throttledWriterAt struct {
	fs.WriterAtCloser
	ctx context.Context
	t   throttle
}

func (w *throttledWriterAt) WriteAt(p []byte, off int64) (int, error) {
	if err := w.t.take(w.ctx, upload, len(p)); err != nil {
		return 0, err
	}
	return w.WriterAtCloser.WriteAt(p, off)
}

// throttledChunkWriter charges each chunk once, before it is sent: backends read a
// chunk several times (hash, signature, retries).
type throttledChunkWriter struct {
	fs.ChunkWriter
	t throttle
}

func (w *throttledChunkWriter) WriteChunk(ctx context.Context, chunkNumber int, reader io.ReadSeeker) (int64, error) {
	size, err := reader.Seek(0, io.SeekEnd)
	if err == nil {
		_, err = reader.Seek(0, io.SeekStart)
	}
	if err != nil {
		return 0, err
	}
	if err := w.t.take(ctx, upload, int(size)); err != nil {
		return 0, err
	}
	return w.ChunkWriter.WriteChunk(ctx, chunkNumber, reader)
}

// throttleBackends makes the backends File Orbit uses wrap every Fs created with
// `orbit_endpoint` in their config.
func throttleBackends() {
	for _, name := range []string{"local", "s3", "sftp", "smb"} {
		info, err := fs.Find(name)
		if err != nil {
			panic(err) // the backends are imported by main.go
		}
		newFs, remote := info.NewFs, name != "local"
		info.NewFs = func(ctx context.Context, configName, root string, m configmap.Mapper) (fs.Fs, error) {
			f, err := newFs(ctx, configName, root, m)
			endpoint, ok := m.Get(endpointKey)
			if !ok || endpoint == "" || f == nil || (err != nil && !errors.Is(err, fs.ErrorIsFile)) {
				return f, err
			}
			t := throttle{own: metersFor(endpoint)}
			if remote {
				t.service = serviceMeters
			}
			return wrapFs(f, t), err
		}
	}
}

func init() {
	throttleBackends()
	rc.Add(rc.Call{
		Path:  "orbit/bwlimit",
		Title: "Set an endpoint's (or, without endpoint, the service's) bandwidth limits",
		Help: `Parameters: endpoint (a name; empty or absent: the service-wide limit on remote
endpoints), upload and download in bytes per second (0: no limit). Takes effect at once,
also for transfers in progress.`,
		Fn: func(ctx context.Context, in rc.Params) (rc.Params, error) {
			endpoint, err := in.GetString("endpoint")
			if err != nil && !rc.IsErrParamNotFound(err) {
				return nil, err
			}
			up, err := in.GetInt64("upload")
			if err != nil {
				return nil, err
			}
			down, err := in.GetInt64("download")
			if err != nil {
				return nil, err
			}
			m := serviceMeters
			if endpoint != "" {
				m = metersFor(endpoint)
			}
			m.up.set(up)
			m.down.set(down)
			return rc.Params{}, nil
		},
	})
	rc.Add(rc.Call{
		Path:  "orbit/bwstats",
		Title: "The bandwidth limits in force and the bytes moved, per endpoint and service-wide",
		Fn: func(ctx context.Context, in rc.Params) (rc.Params, error) {
			describe := func(m *meters) rc.Params {
				return rc.Params{
					"upload_limit": m.up.limit.Load(), "download_limit": m.down.limit.Load(),
					"upload_bytes": m.up.bytes.Load(), "download_bytes": m.down.bytes.Load(),
				}
			}
			endpoints := rc.Params{}
			endpointMeters.Range(func(name, m any) bool {
				endpoints[name.(string)] = describe(m.(*meters))
				return true
			})
			return rc.Params{"endpoints": endpoints, "service": describe(serviceMeters)}, nil
		},
	})
}
