package sessiond

// TokenOpenAPIPaths documents the routes Tokens mounts, as OpenAPI 3.1
// path items keyed by path; the server merges them into the document it
// serves (see Documented).
const TokenOpenAPIPaths = `{
 "/v1/tokens": {
  "post": {
   "operationId": "issueTokens",
   "summary": "Issue an access token and a refresh token for a session",
   "description": "Validates the server-side session token (records activity) and returns a short-lived access token and the first refresh token of a new family, which replaces any earlier refresh token of that session.",
   "requestBody": {
    "required": true,
    "content": {
     "application/json": {
      "schema": {
       "type": "object",
       "required": [
        "token"
       ],
       "properties": {
        "token": {
         "type": "string",
         "description": "server-side session token"
        },
        "audience": {
         "type": "string",
         "description": "aud of the access token; default the configured audience"
        },
        "client": {
         "$ref": "#/components/schemas/Client"
        }
       },
       "additionalProperties": false
      }
     }
    }
   },
   "responses": {
    "200": {
     "description": "token pair",
     "content": {
      "application/json": {
       "schema": {
        "type": "object",
        "required": [
         "access_token",
         "refresh_token",
         "token_type",
         "expires_in"
        ],
        "properties": {
         "access_token": {
          "type": "string",
          "description": "JWT, typ at+jwt; claims iss, sub, aud, exp, iat, nbf, jti, sid (session handle), auth_level"
         },
         "refresh_token": {
          "type": "string",
          "description": "opaque \"<handle>.<secret>\"; single use, rotated on every refresh"
         },
         "token_type": {
          "type": "string",
          "const": "Bearer"
         },
         "expires_in": {
          "type": "integer",
          "description": "access token lifetime in seconds"
         }
        },
        "additionalProperties": false
       }
      }
     }
    },
    "400": {
     "description": "malformed body, audience not allowed, anonymous session",
     "content": {
      "application/json": {
       "schema": {
        "$ref": "#/components/schemas/Error"
       }
      }
     }
    },
    "401": {
     "description": "missing API key, or invalid/expired/revoked session",
     "content": {
      "application/json": {
       "schema": {
        "$ref": "#/components/schemas/Error"
       }
      }
     }
    },
    "413": {
     "description": "body too large",
     "content": {
      "application/json": {
       "schema": {
        "$ref": "#/components/schemas/Error"
       }
      }
     }
    },
    "503": {
     "description": "store unavailable",
     "content": {
      "application/json": {
       "schema": {
        "$ref": "#/components/schemas/Error"
       }
      }
     }
    }
   }
  }
 },
 "/v1/tokens/refresh": {
  "post": {
   "operationId": "refreshTokens",
   "summary": "Rotate a refresh token",
   "description": "Returns a new access token and a new refresh token; the presented one is retired in the same atomic store update. Within the refresh grace window the immediately previous token returns the same successor again. A retired token presented after it revokes the session and answers 401 refresh_token_reused.",
   "requestBody": {
    "required": true,
    "content": {
     "application/json": {
      "schema": {
       "type": "object",
       "required": [
        "refresh_token"
       ],
       "properties": {
        "refresh_token": {
         "type": "string"
        },
        "audience": {
         "type": "string"
        },
        "client": {
         "$ref": "#/components/schemas/Client"
        }
       },
       "additionalProperties": false
      }
     }
    }
   },
   "responses": {
    "200": {
     "description": "token pair",
     "content": {
      "application/json": {
       "schema": {
        "type": "object",
        "required": [
         "access_token",
         "refresh_token",
         "token_type",
         "expires_in"
        ],
        "properties": {
         "access_token": {
          "type": "string",
          "description": "JWT, typ at+jwt; claims iss, sub, aud, exp, iat, nbf, jti, sid (session handle), auth_level"
         },
         "refresh_token": {
          "type": "string",
          "description": "opaque \"<handle>.<secret>\"; single use, rotated on every refresh"
         },
         "token_type": {
          "type": "string",
          "const": "Bearer"
         },
         "expires_in": {
          "type": "integer",
          "description": "access token lifetime in seconds"
         }
        },
        "additionalProperties": false
       }
      }
     }
    },
    "400": {
     "description": "malformed body or audience not allowed",
     "content": {
      "application/json": {
       "schema": {
        "$ref": "#/components/schemas/Error"
       }
      }
     }
    },
    "401": {
     "description": "invalid_token, session_expired, session_revoked, or refresh_token_reused (the session is now revoked)",
     "content": {
      "application/json": {
       "schema": {
        "$ref": "#/components/schemas/Error"
       }
      }
     }
    },
    "413": {
     "description": "body too large",
     "content": {
      "application/json": {
       "schema": {
        "$ref": "#/components/schemas/Error"
       }
      }
     }
    },
    "503": {
     "description": "store unavailable",
     "content": {
      "application/json": {
       "schema": {
        "$ref": "#/components/schemas/Error"
       }
      }
     }
    }
   }
  }
 },
 "/v1/tokens/introspect": {
  "post": {
   "operationId": "introspectToken",
   "summary": "RFC 7662 token introspection",
   "description": "Only a currently valid access token (signature, claims, revocation list and live session) is active. Anything else, refresh tokens and malformed input included, is {\"active\": false}.",
   "requestBody": {
    "required": true,
    "content": {
     "application/x-www-form-urlencoded": {
      "schema": {
       "type": "object",
       "required": [
        "token"
       ],
       "properties": {
        "token": {
         "type": "string"
        },
        "audience": {
         "type": "string"
        }
       }
      }
     },
     "application/json": {
      "schema": {
       "type": "object",
       "required": [
        "token"
       ],
       "properties": {
        "token": {
         "type": "string"
        },
        "audience": {
         "type": "string"
        },
        "token_type_hint": {
         "type": "string"
        }
       }
      }
     }
    }
   },
   "responses": {
    "200": {
     "description": "introspection result",
     "content": {
      "application/json": {
       "schema": {
        "type": "object",
        "required": [
         "active"
        ],
        "properties": {
         "active": {
          "type": "boolean"
         },
         "token_type": {
          "type": "string"
         },
         "iss": {
          "type": "string"
         },
         "sub": {
          "type": "string"
         },
         "sid": {
          "type": "string"
         },
         "aud": {
          "type": "array",
          "items": {
           "type": "string"
          }
         },
         "exp": {
          "type": "integer"
         },
         "iat": {
          "type": "integer"
         },
         "nbf": {
          "type": "integer"
         },
         "jti": {
          "type": "string"
         },
         "auth_level": {
          "type": "integer"
         },
         "scope": {}
        }
       }
      }
     }
    },
    "401": {
     "description": "missing API key",
     "content": {
      "application/json": {
       "schema": {
        "$ref": "#/components/schemas/Error"
       }
      }
     }
    },
    "413": {
     "description": "body too large",
     "content": {
      "application/json": {
       "schema": {
        "$ref": "#/components/schemas/Error"
       }
      }
     }
    }
   }
  }
 },
 "/v1/tokens/revocations": {
  "get": {
   "operationId": "revocationStream",
   "summary": "Stream of access-token revocations (server-sent events)",
   "description": "text/event-stream: every revocation still in force as \u0060revoke\u0060 events (data: {\"sid\"|\"jti\"|\"sub\"+\"not_before\", \"expires\"}), then a \u0060ready\u0060 event, then new revocations as they happen, with a keep-alive comment every 15s. Verifiers (package accesstoken/verify RevocationFeed) subscribe to it.",
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
     "description": "missing API key",
     "content": {
      "application/json": {
       "schema": {
        "$ref": "#/components/schemas/Error"
       }
      }
     }
    }
   }
  }
 },
 "/.well-known/jwks.json": {
  "get": {
   "operationId": "jwks",
   "summary": "Public keys of access tokens (JWK set)",
   "security": [
    {}
   ],
   "description": "Public keys only, each with kid, alg and use \"sig\"; a key appears before it signs and stays until every token it signed has expired. Cacheable (Cache-Control max-age).",
   "responses": {
    "200": {
     "description": "JWK set",
     "content": {
      "application/json": {
       "schema": {
        "type": "object",
        "required": [
         "keys"
        ],
        "properties": {
         "keys": {
          "type": "array",
          "items": {
           "type": "object",
           "required": [
            "kty",
            "kid",
            "alg",
            "use"
           ]
          }
         }
        }
       }
      }
     }
    }
   }
  }
 }
}`

// OpenAPIPaths implements Documented.
func (t *Tokens) OpenAPIPaths() []byte { return []byte(TokenOpenAPIPaths) }
