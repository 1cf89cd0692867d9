package redisstore

import (
	"context"
	"errors"
	"fmt"
	"net/url"
	"strconv"
	"strings"
	"time"

	"github.com/redis/rueidis"
	"github.com/sessionkit/sessionkit"
)

// Options configure a Store. The zero value is not usable: set URL or
// Client.
type Options struct {
	// URL names the server. Accepted forms:
	//
	//	redis://[user:password@]host:port[/db]       one server, or a cluster
	//	rediss://...                                 the same over TLS
	//	redis://host1:port?addr=host2:port&addr=...  more seed addresses
	//	redis+cluster://host1:port,host2:port        cluster seed list
	//	rediss+cluster://host1:port,host2:port       the same over TLS
	//
	// Whether the server is a cluster is detected on connect. The query
	// parameters of rueidis.ParseURL (dial_timeout, client_name, ...) apply.
	URL string

	// Client, if set, is used instead of URL. The Store does not close it.
	// For NearCache it must have client-side caching enabled (RESP3).
	Client rueidis.Client

	// Prefix starts every key; it must not contain braces. Default "sk:".
	Prefix string

	// NearCache keeps records in process memory, kept fresh by Redis
	// invalidation messages (client-side caching). Entries live at most
	// NearCacheTTL, which bounds staleness if an invalidation were lost.
	NearCache    bool
	NearCacheTTL time.Duration // default 2s

	// Slack is how long a live record's keys are kept past its PurgeAt
	// before Redis expires them itself. It lets Touch extend PurgeAt
	// without rewriting the record key (which would invalidate every near
	// cache). DeleteExpired removes records at PurgeAt regardless. Default
	// one hour.
	Slack time.Duration
}

// Defaults.
const (
	DefaultPrefix       = "sk:"
	DefaultNearCacheTTL = 2 * time.Second
	DefaultSlack        = time.Hour
)

// ErrOptions reports unusable Options.
var ErrOptions = errors.New("redisstore: invalid options")

// New connects to Redis and returns a Store. It checks the connection with
// a PING bounded by ctx.
func New(ctx context.Context, o Options) (*Store, error) {
	if o.Prefix == "" {
		o.Prefix = DefaultPrefix
	}
	if strings.ContainsAny(o.Prefix, "{}") {
		return nil, fmt.Errorf("%w: prefix %q contains a brace", ErrOptions, o.Prefix)
	}
	if o.NearCacheTTL <= 0 {
		o.NearCacheTTL = DefaultNearCacheTTL
	}
	if o.Slack <= 0 {
		o.Slack = DefaultSlack
	}
	c, owned := o.Client, false
	if c == nil {
		if o.URL == "" {
			return nil, fmt.Errorf("%w: neither URL nor Client set", ErrOptions)
		}
		co, err := clientOption(o.URL)
		if err != nil {
			return nil, fmt.Errorf("%w: %v", ErrOptions, err)
		}
		co.DisableCache = !o.NearCache
		// Fail fast: a session lookup that cannot reach Redis must fail
		// closed now rather than wait for a reconnect.
		co.DisableRetry = true
		if c, err = rueidis.NewClient(co); err != nil {
			return nil, fmt.Errorf("redisstore: connect: %w: %w", sessionkit.ErrStore, err)
		}
		owned = true
	}
	s := &Store{c: c, owned: owned, k: keys{o.Prefix}, o: o}
	if o.NearCache {
		s.recent = newRecent(o.NearCacheTTL)
	}
	s.single.Store(c.Mode() != rueidis.ClientModeCluster)
	if err := s.Ping(ctx); err != nil {
		if owned {
			c.Close()
		}
		return nil, err
	}
	return s, nil
}

// NewFromURL is New for a URL that may also carry the Store's own options
// as query parameters: prefix, near_cache (true/false), near_cache_ttl and
// slack (durations such as "2s").
func NewFromURL(ctx context.Context, rawURL string) (*Store, error) {
	o, err := ParseURL(rawURL)
	if err != nil {
		return nil, err
	}
	return New(ctx, o)
}

// ParseURL splits the Store's own query parameters off rawURL and returns
// Options with the remaining URL. It does not connect.
func ParseURL(rawURL string) (Options, error) {
	var o Options
	i := strings.IndexByte(rawURL, '?')
	if i < 0 {
		o.URL = rawURL
		_, err := clientOption(o.URL)
		if err != nil {
			return Options{}, fmt.Errorf("%w: %v", ErrOptions, err)
		}
		return o, nil
	}
	q, err := url.ParseQuery(rawURL[i+1:])
	if err != nil {
		return Options{}, fmt.Errorf("%w: query: %v", ErrOptions, err)
	}
	dur := func(name string, d *time.Duration) error {
		if v := q.Get(name); v != "" {
			x, err := time.ParseDuration(v)
			if err != nil || x < 0 {
				return fmt.Errorf("%w: %s=%q", ErrOptions, name, v)
			}
			*d = x
		}
		q.Del(name)
		return nil
	}
	o.Prefix = q.Get("prefix")
	q.Del("prefix")
	if v := q.Get("near_cache"); v != "" {
		if o.NearCache, err = strconv.ParseBool(v); err != nil {
			return Options{}, fmt.Errorf("%w: near_cache=%q", ErrOptions, v)
		}
	}
	q.Del("near_cache")
	if err := dur("near_cache_ttl", &o.NearCacheTTL); err != nil {
		return Options{}, err
	}
	if err := dur("slack", &o.Slack); err != nil {
		return Options{}, err
	}
	o.URL = rawURL[:i]
	if len(q) > 0 {
		o.URL += "?" + q.Encode()
	}
	if strings.ContainsAny(o.Prefix, "{}") {
		return Options{}, fmt.Errorf("%w: prefix %q contains a brace", ErrOptions, o.Prefix)
	}
	if _, err := clientOption(o.URL); err != nil {
		return Options{}, fmt.Errorf("%w: %v", ErrOptions, err)
	}
	return o, nil
}

// clientOption turns a URL into rueidis options, accepting the
// redis+cluster:// seed-list form on top of rueidis.ParseURL.
func clientOption(raw string) (rueidis.ClientOption, error) {
	scheme, rest, ok := strings.Cut(raw, "://")
	if !ok {
		return rueidis.ClientOption{}, errors.New("URL has no scheme")
	}
	switch scheme {
	case "redis+cluster", "rediss+cluster":
		hostsEnd := strings.IndexAny(rest, "/?")
		if hostsEnd < 0 {
			hostsEnd = len(rest)
		}
		userinfo, hosts := "", rest[:hostsEnd]
		if at := strings.LastIndexByte(hosts, '@'); at >= 0 {
			userinfo, hosts = hosts[:at+1], hosts[at+1:]
		}
		seeds := strings.Split(hosts, ",")
		if len(seeds) == 0 || seeds[0] == "" {
			return rueidis.ClientOption{}, errors.New("cluster URL has no hosts")
		}
		o, err := rueidis.ParseURL(strings.TrimSuffix(scheme, "+cluster") + "://" + userinfo + seeds[0] + rest[hostsEnd:])
		if err != nil {
			return o, err
		}
		for _, h := range seeds[1:] {
			if h == "" {
				return rueidis.ClientOption{}, errors.New("cluster URL has an empty host")
			}
			if _, _, err := splitHostPort(h); err != nil {
				return rueidis.ClientOption{}, err
			}
			o.InitAddress = append(o.InitAddress, h)
		}
		return o, nil
	case "redis", "rediss":
		return rueidis.ParseURL(raw)
	default:
		return rueidis.ClientOption{}, fmt.Errorf("unsupported URL scheme %q", scheme)
	}
}

func splitHostPort(h string) (string, string, error) {
	u, err := url.Parse("redis://" + h)
	if err != nil || u.Host != h || u.Port() == "" {
		return "", "", fmt.Errorf("bad cluster address %q (want host:port)", h)
	}
	return u.Hostname(), u.Port(), nil
}
