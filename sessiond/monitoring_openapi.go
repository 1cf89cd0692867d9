package sessiond

import "encoding/json"

// monitoringOpenAPIPaths documents the routes Monitoring mounts; the server
// merges them into the document it serves (see Documented).
const monitoringOpenAPIPaths = `{
 "/metrics": {
  "get": {
   "operationId": "metrics",
   "summary": "Prometheus metrics (text exposition format)",
   "description": "Counters, gauges and histograms with the sessionkit_ prefix. Needs the API key unless sessiond runs with -metrics=public; absent with -metrics=off.",
   "security": [
    {
     "apiKey": []
    }
   ],
   "responses": {
    "200": {
     "description": "exposition",
     "content": {
      "text/plain": {
       "schema": {
        "type": "string"
       }
      }
     }
    },
    "401": {
     "$ref": "#/components/responses/Unauthorized"
    }
   }
  }
 },
 "/v1/events": {
  "get": {
   "operationId": "listEvents",
   "summary": "Event history, oldest first",
   "description": "What happened to a session or a subject, within the history's retention.",
   "security": [
    {
     "apiKey": []
    }
   ],
   "parameters": [
    {
     "name": "subject",
     "in": "query",
     "required": false,
     "description": "only this subject's events",
     "schema": {
      "type": "string"
     }
    },
    {
     "name": "handle",
     "in": "query",
     "required": false,
     "description": "only this session's events",
     "schema": {
      "type": "string"
     }
    },
    {
     "name": "type",
     "in": "query",
     "required": false,
     "description": "only events of this type, e.g. anomaly",
     "schema": {
      "type": "string"
     }
    },
    {
     "name": "since",
     "in": "query",
     "required": false,
     "description": "RFC 3339 time, inclusive",
     "schema": {
      "type": "string",
      "format": "date-time"
     }
    },
    {
     "name": "limit",
     "in": "query",
     "required": false,
     "description": "the most recent N matches (1 to 1000, default 100)",
     "schema": {
      "type": "integer",
      "minimum": 1,
      "maximum": 1000
     }
    }
   ],
   "responses": {
    "200": {
     "description": "events",
     "content": {
      "application/json": {
       "schema": {
        "type": "object",
        "required": [
         "events"
        ],
        "properties": {
         "events": {
          "type": "array",
          "items": {
           "type": "object",
           "properties": {
            "id": {
             "type": "string"
            },
            "type": {
             "type": "string"
            },
            "time": {
             "type": "string",
             "format": "date-time"
            },
            "handle": {
             "type": "string"
            },
            "subject": {
             "type": "string"
            },
            "reason": {
             "type": "string"
            },
            "client": {
             "$ref": "#/components/schemas/Client"
            },
            "actor": {
             "type": "string"
            },
            "detail": {
             "type": "object",
             "additionalProperties": {
              "type": "string"
             }
            }
           }
          }
         }
        }
       }
      }
     }
    },
    "400": {
     "$ref": "#/components/responses/BadRequest"
    },
    "401": {
     "$ref": "#/components/responses/Unauthorized"
    },
    "503": {
     "$ref": "#/components/responses/Unavailable"
    }
   }
  }
 },
 "/v1/events/stream": {
  "get": {
   "operationId": "streamEvents",
   "summary": "Live events as Server-Sent Events",
   "description": "Each event is one SSE message whose data is the event's JSON; comments are heartbeats. A slow reader loses events rather than holding memory.",
   "security": [
    {
     "apiKey": []
    }
   ],
   "parameters": [
    {
     "name": "subject",
     "in": "query",
     "required": false,
     "description": "only this subject's events",
     "schema": {
      "type": "string"
     }
    },
    {
     "name": "handle",
     "in": "query",
     "required": false,
     "description": "only this session's events",
     "schema": {
      "type": "string"
     }
    },
    {
     "name": "type",
     "in": "query",
     "required": false,
     "description": "only events of this type",
     "schema": {
      "type": "string"
     }
    }
   ],
   "responses": {
    "200": {
     "description": "event stream",
     "content": {
      "text/event-stream": {
       "schema": {
        "type": "string"
       }
      }
     }
    },
    "401": {
     "$ref": "#/components/responses/Unauthorized"
    }
   }
  }
 },
 "/v1/metrics/series": {
  "get": {
   "operationId": "metricSeries",
   "summary": "Per-minute counts of sessions created, rejected and active",
   "security": [
    {
     "apiKey": []
    }
   ],
   "parameters": [
    {
     "name": "since",
     "in": "query",
     "required": false,
     "description": "RFC 3339 time (default one hour ago)",
     "schema": {
      "type": "string",
      "format": "date-time"
     }
    }
   ],
   "responses": {
    "200": {
     "description": "points",
     "content": {
      "application/json": {
       "schema": {
        "type": "object",
        "required": [
         "points"
        ],
        "properties": {
         "points": {
          "type": "array",
          "items": {
           "type": "object"
          }
         }
        }
       }
      }
     }
    },
    "400": {
     "$ref": "#/components/responses/BadRequest"
    },
    "401": {
     "$ref": "#/components/responses/Unauthorized"
    }
   }
  }
 }
}`

// OpenAPIPaths implements Documented, for the routes Mount added.
func (mo *Monitoring) OpenAPIPaths() []byte {
	var paths map[string]json.RawMessage
	json.Unmarshal([]byte(monitoringOpenAPIPaths), &paths)
	if mo.History == nil {
		delete(paths, "/v1/events")
	}
	switch mo.opts.MetricsAccess {
	case MetricsAPIKey:
	case MetricsPublic:
		var item map[string]map[string]any
		json.Unmarshal(paths["/metrics"], &item)
		item["get"]["security"] = []any{}
		paths["/metrics"], _ = json.Marshal(item)
	default:
		delete(paths, "/metrics")
	}
	b, _ := json.Marshal(paths)
	return b
}
