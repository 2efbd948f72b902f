from discharge.cli import main

main()
