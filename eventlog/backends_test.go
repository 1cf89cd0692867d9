package eventlog_test

func allBackends() map[string]opener { return backends() }
