module github.com/datasole/datasole-go/demos

go 1.26

require github.com/datasole/datasole-go/datasole v0.0.0

replace github.com/datasole/datasole-go/datasole => ../datasole
