"""The 12 preset Gold Miner maps, as data.

Source: the files ``miner/Maps/map1`` … ``miner/Maps/map12`` of the MIFQ group's Gold Miner setup,
github.com/vietbt/IMAXPPO (commit 35bd22d1b36d2c44c49416929b9f50db02dec879), themselves the 2020
RL competition's maps. Each file is a JSON list of 9 rows (``map[y][x]``) of 21 cells: 0 land,
−1 forest, −2 trap, −3 swamp, > 0 gold. The files' gold amounts are not kept: every reset
re-randomises them (:func:`marlrepro.envs.miner.draw_gold`), so a gold cell is only marked here.

One character per cell: ``.`` land, ``F`` forest, ``T`` trap, ``S`` swamp, ``G`` gold.
"""

from __future__ import annotations

WIDTH, HEIGHT = 21, 9

MAPS: tuple[tuple[str, ...], ...] = (
    (  # map1
        "GT.TGF....FTTT....GTG",
        "TTTTF.FFFFSGTTTTSSGTF",
        "TTGT.T.TSST.STTGSS..G",
        ".SST..F.GST...F..FFFT",
        "T...F.FGGST.S...FSSTF",
        "FSFS.T..TFGS.TGS.TST.",
        "TSFSFGFSTF.F.F.F.TSSF",
        ".SFS.TSS....T.TSSSSGF",
        "GSFSFFTT.FGT.T..TSSGG",
    ),
    (  # map2
        "GFFTTTTG...STGSGTF...",
        "GFFT..TTTF.SSTGTFGTF.",
        "FFGT.........SSSFFS..",
        "FFTT.ST..SSS......S.G",
        "..T.SSS.FTGSS.T.F.S..",
        ".GT.SGF..FTST.FGF.SF.",
        "SST.SSS....SSSTTT.TT.",
        "FST..T..SSSSGS....TG.",
        "GSTSGT.SSGFGFS.FF....",
    ),
    (  # map3
        "GTTGT.TF.SGSS.....SGS",
        "TTFTF.SGT.S.G.TF...S.",
        "STFSF..ST...FTGT.TGT.",
        "GSSGTTTTGTT...T.SSST.",
        "SS.SFGF.TTGT.S..SGSTG",
        "S...FFFFS.T.SGS.SSS..",
        "GS....FGS...TST......",
        "S.F.F.SSS.F...GSSSFTT",
        "..FGFSGS.FGF..TTTFGFT",
    ),
    (  # map4
        ".F.....S.F.FSGGGF.TF.",
        "SGSTGF......FFGF..TGS",
        "FST.FT.F......TF..TFS",
        ".S....TGS..TT.T......",
        "....FF.S.FGST...FTFFF",
        "F..FSSFF..ST....FGFFS",
        "GTFSTSSF.S....S.FFFSG",
        ".FSTGTSF....T....FSG.",
        ".STGGTSF.F.TGTF.FSG.G",
    ),
    (  # map5
        ".......T....T....FFGF",
        "GFST..FGFTGTTGF..FTFT",
        "FGFSGFFSSTTFSTF..S.F.",
        ".FS.F.SSFSFGFSTFSGF..",
        ".S....TFGFGFSG...F..T",
        "...SGSSSFGGFS.F....TG",
        ".S..S...SFFS..TGTF..T",
        ".FST...F.SSSFTTFT.F..",
        "FGFST.FGF..FGFTFT.G..",
    ),
    (  # map6
        "S.....GSG.TTS...SFTFG",
        "..TF.F...TFSGFFTGTFTG",
        "ST.G..SF...S.T.FFF.TF",
        "SST.SSTF..TS....TST.G",
        "GTS...TT..S..SS..SFS.",
        "TFGTSSTFFSGT..FSFTGT.",
        "TSFT.GGFTTS.TS..FGS..",
        "T.T.FF.F.F.S.F.FT.TSF",
        "SGTTGGFSTT...SSFF.FG.",
    ),
    (  # map7
        "FSFGFFFT..FS.T.S.STTG",
        "..FSFTFGFTTTS..STSFF.",
        "G.TTSS.GFS..TFFG.TT.F",
        ".FF.T..S.S.SFST.T..TT",
        "TSTTTS.F.F.GFF.FTGTSF",
        ".SFTTGGFTGTFFTTT..TFT",
        "F..SSFSSSGSFTSFTFSFT.",
        "STSFG.T.SST.SSTGFT.SG",
        ".GTFFTT.GS.TT.S.SFFFT",
    ),
    (  # map8
        "GF..TGSFGT.TTFFS.FTTT",
        "T...SSG.GSGTT.FSTT.FG",
        "FTTT.FTT.SGFS.TGTG.TF",
        "SSSSFSFS.F.T.FFTTS..S",
        "TTTTFSSGFFSFFSGFTGSST",
        "GTFSTFFSSS.STF..TGS.G",
        "SSGS.FFS.TTFG.G..FFST",
        "STTTGTSFT.GF..FTGSGST",
        "G.FSF..STT..TTTS.FF.S",
    ),
    (  # map9
        "GTTTTTF.GTSFT.S.FSTGT",
        "FFGFTGT.FFGFSSFFF.TSS",
        "F..FFT.TTFF.STGSTFTFF",
        "F.TGF.TFSFSTG.S.GFG.T",
        "FSSSSGFFG.SSSSF..TTST",
        "SSS..FFT.TT.TSFS.S.T.",
        "FS.G.F.S.T.GTTSF.ST.F",
        "FTGFSGTTTS.STG.....SG",
        "G.FGFSS.FSSFFSSSSGFSF",
    ),
    (  # map10
        "G.TTSTSFTSS...F.TTGFT",
        "FFSFGTFSTFF.G.TSGTFFF",
        "SFSFSTS.F.TGTS..TSG..",
        "SFSGFFGF.TSTFG.SG.GST",
        "TFF.SFGG.SS.FGFS...T.",
        ".TTFSGSSST...FTS.S.TT",
        "SFSFSTFTFS.FST.TFGSTG",
        "SGF.T.TSSS.SF.FFSTFSS",
        "SSSG.TTSGSTSF.SFGTTS.",
    ),
    (  # map11
        "G.TST.STT.GSFF.FG..FS",
        "TSTS..SFSS.S....F.SG.",
        ".TGTG.F.FG.TS.FG.TS.T",
        "TF.T.SGSSSFTSTSTTG.T.",
        "FG.SSTSGTFSSFFFTSGFST",
        ".FFTTSSS.T.TTGTSFSS..",
        "STF..TST.FFS.GT..GF.G",
        "FS..SGSFFTSFF.TFF..TS",
        "TGSFGFTT..ST.TGTTTSSG",
    ),
    (  # map12
        "GTS...GSFFSF.TSSGS.SS",
        ".FFGTSGS.TS...TT...SG",
        "TF.G.TSTFFTGSG.STF.F.",
        "..FS..SGTTFTS..SFT.SF",
        "G.STFTFTSG..T.SGFSSGF",
        "FSFTTST.TS...TT...TFG",
        "GSGSFST.SSGFTFTT..S..",
        ".T.F.STTFT..STG.STSTS",
        "FSTS.SGF..TSG.T...GF.",
    ),
)

LAND, FOREST, TRAP, SWAMP, GOLD = range(5)
CELL_CODES = {".": LAND, "F": FOREST, "T": TRAP, "S": SWAMP, "G": GOLD}


def map_codes() -> list[list[list[int]]]:
    """The maps as nested lists of cell codes, ``[map][y][x]``."""
    return [[[CELL_CODES[c] for c in row] for row in rows] for rows in MAPS]
