package anomaly_test

import (
	"fmt"
	"net/http"

	"github.com/sessionkit/sessionkit"
	"github.com/sessionkit/sessionkit/anomaly"
	"github.com/sessionkit/sessionkit/store/memstore"
)

func Example() {
	eng := anomaly.New(anomaly.Config{
		Travel:    anomaly.Revoke, // one session, two networks within minutes
		NewDevice: anomaly.StepUp, // ask for the password again
	})
	defer eng.Close()
	m, err := sessionkit.New(memstore.New(memstore.Options{}), sessionkit.Config{
		Events: sessionkit.MultiSink{eng, sessionkit.SlogSink{}},
	})
	if err != nil {
		panic(err)
	}
	eng.Start(m)

	app := http.NewServeMux()
	// The limiter sits outside the session middleware: it sees the
	// rejections the middleware reports and answers them 429 while the
	// client IP is blocked.
	handler := eng.Limiter().Middleware(m.LoadAndSave(app))
	_ = handler
	fmt.Println(anomaly.UAFamily("Mozilla/5.0 (X11; Linux x86_64; rv:130.0) Gecko/20100101 Firefox/130.0"))
	// Output: firefox/linux
}
