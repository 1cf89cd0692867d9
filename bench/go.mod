module github.com/sessionkit/sessionkit/bench

go 1.26.8

require (
	github.com/alexedwards/scs/redisstore v0.0.0-20251002162104-209de6e426de
	github.com/alexedwards/scs/v2 v2.9.0
	github.com/boj/redistore v1.4.1
	github.com/gomodule/redigo v1.9.3
	github.com/gorilla/sessions v1.4.0
	github.com/redis/rueidis v1.0.79
	github.com/sessionkit/sessionkit v0.0.0
)

require (
	github.com/gorilla/securecookie v1.1.2 // indirect
	golang.org/x/sys v0.48.0 // indirect
)

replace github.com/sessionkit/sessionkit => ../
