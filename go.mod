module github.com/networkcluster/networkcluster

go 1.26

require (
	github.com/cloudwego/netpoll v0.7.2
	github.com/gobwas/httphead v0.1.0
	github.com/gobwas/ws v1.5.0
	github.com/google/uuid v1.6.0
	github.com/klauspost/compress v1.20.4
)

require (
	github.com/bytedance/gopkg v0.1.1 // indirect
	github.com/cloudwego/gopkg v0.1.4 // indirect
)
