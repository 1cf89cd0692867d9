package anomaly

import (
	"strings"

	"github.com/sessionkit/sessionkit"
)

// families are matched in order: the first token found in a User-Agent
// names its family. Edge and Opera carry "Chrome", and Chrome carries
// "Safari", so the more specific come first.
var browsers = []struct{ token, name string }{
	{"Edg/", "edge"}, {"OPR/", "opera"}, {"Firefox/", "firefox"}, {"Chrome/", "chrome"},
	{"CriOS/", "chrome"}, {"Safari/", "safari"}, {"curl/", "curl"},
}

var systems = []struct{ token, name string }{
	{"Android", "android"}, {"iPhone", "ios"}, {"iPad", "ios"}, {"Windows", "windows"},
	{"Mac OS X", "macos"}, {"CrOS", "chromeos"}, {"Linux", "linux"},
}

// UAFamily reduces a User-Agent to browser and operating system family,
// e.g. "firefox/linux", ignoring versions, which change with every update.
// Unknown parts are "other".
func UAFamily(ua string) string {
	b, s := "other", "other"
	for _, x := range browsers {
		if strings.Contains(ua, x.token) {
			b = x.name
			break
		}
	}
	for _, x := range systems {
		if strings.Contains(ua, x.token) {
			s = x.name
			break
		}
	}
	return b + "/" + s
}

// DeviceKey names a client's device: User-Agent family and IP network.
func DeviceKey(c sessionkit.Client, v4, v6 int) string {
	n := "unknown"
	if p, ok := network(c.IP, v4, v6); ok {
		n = p.String()
	}
	return UAFamily(c.UserAgent) + "@" + n
}
