from seamfix.cli import main

main()
