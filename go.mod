module github.com/dhtkit/dht

go 1.25.0
